#!/usr/bin/env bash
# Wall time of `python -m jobs --help` and of every stage's --help (issue target: at most 1 s each), best of
# N runs (default 5), on an idle machine. The suite checks the cause instead (tests/test_cli.py: parsing a
# stage's arguments imports no Spark, Arrow, TensorFlow or Great Expectations).
# Usage: bash bench/bench_cli.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
python=${PYTHON:-.venv/bin/python}
stages=$("$python" -c "from jobs.cli import STAGES; print(' '.join(STAGES))")
for stage in "" $stages; do
  best=
  for ((i = 0; i < runs; i++)); do
    start=$(date +%s.%N)
    "$python" -m jobs $stage --help > /dev/null
    took=$(echo "$(date +%s.%N) - $start" | bc)
    if [ -z "$best" ] || (( $(echo "$took < $best" | bc) )); then best=$took; fi
  done
  printf '%-12s %.2f s\n' "${stage:-(jobs)}" "$best"
done
