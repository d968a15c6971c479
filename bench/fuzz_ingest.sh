#!/usr/bin/env bash
# The ingest property test (tests/jobs/test_ingest_property.py) with many generated examples instead of the
# suite's small fixed sample: lines, bytes, encodings, separators and gzip thrown at the parser; prints how
# many lines were thrown, how many came out clean or quarantined, and how many were lost (must be 0).
#   bench/fuzz_ingest.sh [EXAMPLES]   (default 1000; about 1 s per example on a 2-core machine)
set -euo pipefail
cd "$(dirname "$0")/.."
IM_FUZZ_EXAMPLES="${1:-1000}" .venv/bin/python -m pytest tests/jobs/test_ingest_property.py -p no:cacheprovider \
  -o addopts="" -q -s --timeout=0 2>&1 | grep -E "ingest property|passed|failed|Falsifying|^E " 
