"""A nightly task that runs ``python -m jobs <stage> ARGS`` as a Spark Connect client (``IM_SPARK_REMOTE``).

Without a Spark Connect server every Spark task is a spark-submit, and starts
a driver of its own. With one, the stage needs no driver: it is a plain
command, and this operator runs it. It takes an argument list, not a shell
line, so a templated value (a run id, a param) is one argument whatever it
contains. The stage's output goes to the task log line by line; a failure
raises with the stage's own one-line reason (its ``error: ...`` line), which the
failure callback quotes.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException

REPO = Path(__file__).resolve().parents[2]


class StageCommandOperator(BaseOperator):
    """``python -m jobs STAGE ARGUMENTS`` in the task's environment (so the stage reads its IM_* settings, the
    Spark Connect server among them, as it runs)."""

    template_fields: Sequence[str] = ("arguments",)

    def __init__(self, *, stage: str, arguments: list, **kwargs):
        super().__init__(**kwargs)
        self.stage, self.arguments = stage, arguments
        self._process: subprocess.Popen | None = None

    def execute(self, context) -> None:
        command = [sys.executable, "-m", "jobs", self.stage, *[str(a) for a in self.arguments if str(a) != ""]]
        self.log.info("running %s", " ".join(command[1:]))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        self._process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, text=True, start_new_session=True)
        last_error = None
        for line in self._process.stdout:
            line = line.rstrip("\n")
            self.log.info("%s", line)
            if line.startswith("error: "):
                last_error = line
        code = self._process.wait()
        if code != 0:
            raise AirflowException(last_error or f"error: {self.stage} exited with {code} (see the task log)")

    def on_kill(self) -> None:
        if self._process is not None and self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGTERM)
