"""Run a test's TensorFlow work in a fresh interpreter, as every job runs in production.

The pytest process also hosts a Spark driver, py4j and DuckDB threads for the
whole session. Twice in about eight full runs (once in CI) TensorFlow aborted
the whole interpreter (``Fatal Python error: Aborted`` inside ``fit``) when
it ran there, taking every later test with it. Jobs never share a process
with that mix, so the tests that run TensorFlow compute do not either: the
check runs in a child, and an abort fails one test with its stderr.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]


def run_isolated(check: Callable[..., None], *args: object, timeout: int = 600) -> None:
    """Call module-level ``check(*args)`` (string arguments) in a new Python; fail with its stderr if it fails."""
    code = (f"import sys; from {check.__module__} import {check.__name__} as check; "
            f"check(*sys.argv[1:])")
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    # A native crash (killed by a signal: negative exit) is retried once; a failed assertion is not.
    for _ in range(2):
        result = subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=timeout)
        if result.returncode >= 0:
            break
    assert result.returncode == 0, f"{check.__name__} failed (exit {result.returncode}):\n{result.stderr[-6000:]}"
