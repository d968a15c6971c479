"""Settings: one typed object (jobs/core/config.py) that every reader uses, documented once, refused in one line."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from jobs.core.config import ENV_PREFIX, PipelineConfig, SettingsError, markdown_table

ROOT = Path(__file__).resolve().parent.parent
# Where a setting may be read or set outside jobs/core/config.py: the code, the deployment and the run script.
READERS = [*ROOT.glob("jobs/**/*.py"), *ROOT.glob("models/*.py"), *ROOT.glob("dags/**/*.py"), *ROOT.glob("scripts/*"),
           ROOT / "docker-compose.yml", ROOT / "Dockerfile", ROOT / ".env.example", ROOT / "Makefile"]
NOT_SETTINGS = {"IM_DEBUG"}  # shows the traceback of a failure, including a failure to read the settings


def test_docs_settings_md_is_generated_from_the_settings():
    generated = subprocess.run([sys.executable, "-m", "jobs.core.config"], cwd=ROOT, capture_output=True, text=True,
                               check=True).stdout
    assert (ROOT / "docs" / "settings.md").read_text() == generated, "run: python -m jobs.core.config > docs/settings.md"
    assert markdown_table().count("\n") == len(PipelineConfig.model_fields) + 2


def test_every_variable_the_project_reads_or_sets_is_a_setting():
    names = {f"{ENV_PREFIX}{name.upper()}" for name in PipelineConfig.model_fields}
    used = {match for path in READERS if path.is_file()
            for match in re.findall(r"\bIM_[A-Z0-9_]+\b", path.read_text(errors="replace"))}
    assert used - names - NOT_SETTINGS == set()


@pytest.mark.parametrize("variable, value, words", [
    ("IM_SHUFFLE_PARTITIONS", "eight", "valid integer"),
    ("IM_MIN_PROPENSITY", "1.5", "less than or equal to 1"),
    ("IM_TRAINING_LAUNCHER", "yarn", "'local' or 'spark'"),
    ("IM_VALIDATE_WRITES", "perhaps", "valid boolean"),
])
def test_a_bad_setting_is_one_line_naming_the_variable(monkeypatch, variable, value, words):
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as error:
        PipelineConfig()
    message = str(error.value)
    assert "\n" not in message and f"{variable}={value!r}" in message and words in message


def test_the_command_line_reports_a_bad_setting_in_one_line(tmp_path):
    env = {**os.environ, "IM_TOP_K": "0"}
    result = subprocess.run([sys.executable, "-m", "jobs", "dedupe", "--lake", str(tmp_path), "--date", "2024-01-01"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == ["error: dedupe: bad setting IM_TOP_K='0': "
                                                  "Input should be greater than or equal to 1"]


def test_environment_and_overrides_are_typed_and_the_lake_is_absolute(monkeypatch, tmp_path):
    monkeypatch.setenv("IM_SHUFFLE_PARTITIONS", "3")
    monkeypatch.setenv("IM_VALIDATE_WRITES", "false")
    monkeypatch.chdir(tmp_path)
    config = PipelineConfig(lake="here")
    assert config.shuffle_partitions == 3 and config.validate_writes is False
    assert config.lake == tmp_path / "here"
    assert config.with_overrides(top_k=5, lake=None).top_k == 5
    with pytest.raises(SettingsError, match=r"^bad setting top_k=0 \(from the command line\): Input should be"):
        config.with_overrides(top_k=0)


@pytest.mark.parametrize("name, value, accepted", [
    ("user_sample_fraction", 1, True), ("user_sample_fraction", 0.001, True), ("user_sample_fraction", 0, False),
    ("user_sample_fraction", 1.0000001, False), ("user_sample_fraction", float("nan"), False),
    ("user_sample_fraction", "x", False), ("session_gap_minutes", 1, True), ("session_gap_minutes", 1440, True),
    ("session_gap_minutes", 1441, False), ("session_gap_minutes", float("inf"), False),
    ("min_propensity", 0, True), ("min_propensity", float("nan"), False), ("training_workers", 0, False),
])
def test_a_range_check_agrees_with_the_setting_s_own_validation(name, value, accepted):
    """check_range (command-line options, DAG params) accepts exactly what the setting accepts from the
    environment, NaN and non-numbers included, and refuses in one line naming the option."""
    from jobs.core.config import PipelineConfig, check_range
    from jobs.core.errors import PipelineError

    try:
        PipelineConfig(**{name: value})
        setting_accepts = True
    except PipelineError:
        setting_accepts = False
    assert setting_accepts == accepted
    if accepted:
        assert check_range(name, value, "--option") == value
    else:
        with pytest.raises(PipelineError, match=r"^--option must be (a number )?in [\[(]") as refused:
            check_range(name, value, "--option")
        assert "\n" not in str(refused.value)
