"""Run a test's TensorFlow work in another interpreter, as every job runs in production.

The pytest process also hosts a Spark driver, py4j and DuckDB threads for the
whole session. Twice in about eight full runs (once in CI) TensorFlow aborted
the whole interpreter (``Fatal Python error: Aborted`` inside ``fit``) when
it ran there, taking every later test with it. Jobs never share a process
with that mix, so the tests that run TensorFlow compute do not either: the
check runs in a child, and an abort fails one test with its stderr.

Importing TensorFlow and tf_keras takes 7-9 s on this machine, more than most
of these checks. ``run_isolated`` therefore sends its check to one long-lived
child that imported them once (``serve``), clearing Keras' session after each
check; a check that needs a process of its own (one that sets TensorFlow's
thread pools, which only a process's first op may do) passes ``fresh=True``.
A child that dies takes only the check it was running: the next one starts
another.
"""
from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Callable, NamedTuple

ROOT = Path(__file__).resolve().parents[1]
ENV = {"TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}


def run_isolated(check: Callable[..., None], *args: object, timeout: int = 600, fresh: bool = False) -> None:
    """Call module-level ``check(*args)`` (string arguments) in another Python (the shared child, or a new one with
    ``fresh``); fail with its traceback and stderr if it fails. A native crash is retried once in a new child; a
    failed assertion is not."""
    for _ in range(2):
        outcome = (_run_fresh if fresh else _SHARED.run)(check, [str(a) for a in args], timeout)
        if not outcome.crashed:
            break
    assert outcome.passed, f"{check.__name__} failed:\n{outcome.report[-6000:]}"


class _Outcome(NamedTuple):
    passed: bool
    crashed: bool  # killed by a signal: worth one more try in a new process
    report: str


def _run_fresh(check: Callable[..., None], args: list[str], timeout: int) -> _Outcome:
    code = f"import sys; from {check.__module__} import {check.__name__} as check; check(*sys.argv[1:])"
    result = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env={**os.environ, **ENV},
                            capture_output=True, text=True, timeout=timeout)
    return _Outcome(result.returncode == 0, result.returncode < 0, f"exit {result.returncode}\n{result.stderr}")


class _SharedChild:
    """One ``serve`` process, started at the first check and replaced when it dies; stopped at exit."""

    def __init__(self):
        self.process: subprocess.Popen | None = None
        self.stderr = None
        self.lock = threading.Lock()

    def _start(self) -> None:
        # Appending: the child's writes land at the end whatever this process's reads did to the shared offset.
        self.stderr = tempfile.TemporaryFile(mode="a+", errors="replace")
        self.process = subprocess.Popen([sys.executable, "-c", "from tests.isolated import serve; serve()"], cwd=ROOT,
                                        env={**os.environ, **ENV}, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=self.stderr, text=True)

    def _stderr_since(self, offset: int) -> str:
        self.stderr.seek(offset)
        return self.stderr.read()[-6000:]

    def _kill(self) -> None:
        """Stop a child that hung or whose caller gave up (pytest's timeout, Ctrl-C): it would answer a check
        the next caller did not ask."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def run(self, check: Callable[..., None], args: list[str], timeout: int) -> _Outcome:
        with self.lock:
            if self.process is None or self.process.poll() is not None:
                self._start()
            process, offset = self.process, self.stderr.seek(0, os.SEEK_END)
            timed_out = threading.Event()

            def expire() -> None:
                timed_out.set()
                process.kill()

            timer = threading.Timer(timeout, expire)
            timer.start()
            try:
                process.stdin.write(json.dumps({"module": check.__module__, "name": check.__name__,
                                                "args": args}) + "\n")
                process.stdin.flush()
                line = process.stdout.readline()
            except BrokenPipeError:
                line = ""
            except BaseException:
                self._kill()
                raise
            finally:
                timer.cancel()
            if line:
                reply = json.loads(line)
                return _Outcome(reply["passed"], False, reply["error"] + "\n" + self._stderr_since(offset))
            code = process.wait()
            self.process = None
            if timed_out.is_set():
                return _Outcome(False, False, f"timed out after {timeout} s\n{self._stderr_since(offset)}")
            return _Outcome(False, code < 0, f"the TensorFlow child exited ({code}) during the check\n"
                                              f"{self._stderr_since(offset)}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()


_SHARED = _SharedChild()
atexit.register(_SHARED.stop)


def serve() -> None:
    """The shared child: TensorFlow imported once, then one check per line of stdin, one JSON reply per check
    (anything the checks print goes to stderr)."""
    import importlib
    import random
    import traceback

    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    import numpy
    import tensorflow
    import tf_keras

    for request in sys.stdin:
        request = json.loads(request)
        try:
            getattr(importlib.import_module(request["module"]), request["name"])(*request["args"])
            reply = {"passed": True, "error": ""}
        except BaseException:  # an assertion, or anything else the check raised: the test's failure, not ours
            reply = {"passed": False, "error": traceback.format_exc()}
        finally:
            # What one check set must not reach the next: Keras' graph and names, and the global seeds a check
            # may have fixed (keras.utils.set_random_seed), drawn again from the OS.
            tf_keras.backend.clear_session()
            random.seed()
            numpy.random.seed()
            tensorflow.random.set_seed(None)
        replies.write(json.dumps(reply) + "\n")
        replies.flush()
