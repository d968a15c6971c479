"""docker-compose.yml is a valid deployment: validated by Debian's docker-compose (`make test` installs it)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = shutil.which("docker-compose")
SECRETS = {"POSTGRES_USER": "airflow", "POSTGRES_PASSWORD": "pw", "AIRFLOW_FERNET_KEY": "k", "AIRFLOW_JWT_SECRET": "s",
           "AIRFLOW_API_SECRET_KEY": "w"}


def needs_compose(test):
    """The validator is a requirement of the suite, not an option: without it the compose file goes unchecked."""
    def run():
        assert COMPOSE, "docker-compose is not installed: `make test` installs it (apt-get install docker-compose)"
        test()
    run.__name__, run.__doc__ = test.__name__, test.__doc__
    return run


def _compose(*args: str, env: dict) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in SECRETS}
    return subprocess.run([COMPOSE, "-f", str(ROOT / "docker-compose.yml"), *args], cwd=ROOT,
                          env={**clean, **env}, capture_output=True, text=True, timeout=120)


@needs_compose
def test_compose_file_validates_and_has_the_deployment():
    assert _compose("config", "-q", env=SECRETS).returncode == 0
    config = yaml.safe_load(_compose("config", env=SECRETS).stdout)
    services = config["services"]
    assert {"postgres", "airflow-init", "airflow-api-server", "airflow-scheduler", "airflow-dag-processor",
            "airflow-triggerer", "spark-master", "spark-worker-1", "spark-worker-2"} <= set(services)
    for name, service in services.items():
        if name.startswith("airflow-") and name != "airflow-init":
            assert service["environment"]["AIRFLOW_CONN_SPARK_DEFAULT"] == "spark://spark-master:7077"
            assert "postgresql" in service["environment"]["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        if name.startswith(("airflow-", "spark-")) and name != "airflow-init":
            assert any(":/lake" in str(v) or (isinstance(v, dict) and v.get("target") == "/lake")
                       for v in service["volumes"]), name
            assert service["build"]["context"] == str(ROOT)
    # MLflow: a tracking server on the same PostgreSQL, artifacts on a volume of its own, every task its client.
    mlflow = services["mlflow"]
    assert mlflow["command"][:2] == ["mlflow", "server"] and "--serve-artifacts" in mlflow["command"]
    assert mlflow["environment"]["MLFLOW_BACKEND_STORE_URI"].startswith("postgresql+psycopg2://")
    assert "@postgres:5432/mlflow" in mlflow["environment"]["MLFLOW_BACKEND_STORE_URI"]
    assert f"mlflow-artifacts:{mlflow['environment']['MLFLOW_ARTIFACTS_DESTINATION']}" in str(mlflow["volumes"])
    assert "mlflow-artifacts" in config["volumes"]
    assert f"{ROOT / 'conf' / 'postgres'}:/docker-entrypoint-initdb.d:ro" in str(services["postgres"]["volumes"])
    assert (ROOT / "conf" / "postgres" / "create-mlflow-database.sh").stat().st_mode & 0o111
    # A named volume takes its owner from the image's folder: the server (uid 50000) must own it to write.
    assert re.search(r"mkdir -p [^\n]*/mlflow-artifacts[^\n]*\n.*chown app:0 [^\n]*/mlflow-artifacts",
                     (ROOT / "Dockerfile").read_text())
    for name, service in services.items():
        if name.startswith("airflow-") and name != "airflow-init":
            assert "AIRFLOW_CONN_SMTP_ALERTS" in service["environment"], name  # the alerts' connection reaches them
    for name, service in services.items():
        if name.startswith(("airflow-", "spark-")) and name != "airflow-init":
            assert service["environment"]["IM_MLFLOW_TRACKING_URI"] == "http://mlflow:5000", name


@needs_compose
def test_secrets_must_come_from_the_environment():
    result = _compose("config", "-q", env={})
    assert result.returncode != 0 and "set POSTGRES_USER" in result.stderr


SECRET_WORDS = ("PASSWORD", "FERNET_KEY", "SECRET", "TOKEN")


def test_no_secret_is_written_in_the_compose_file_the_image_or_the_example():
    text = (ROOT / "docker-compose.yml").read_text()
    for key in SECRET_WORDS:
        for value in re.findall(rf"^\s*\w*{key}\w*:\s*(.+?)\s*$", text, flags=re.MULTILINE):
            assert re.fullmatch(r"\$\{\w+:\?[^}]*\}", value), f"{key} is hard-coded or has a default: {value}"
    assert "SIMPLE_AUTH_MANAGER" not in text and "admin:admin" not in text
    for line in (ROOT / ".env.example").read_text().splitlines():
        if any(word in line for word in SECRET_WORDS) and not line.startswith("#"):
            assert line.split("=", 1)[1] == "", f".env.example gives a value: {line}"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert not any(re.search(rf"^(ENV|ARG).*{word}", dockerfile, re.MULTILINE) for word in SECRET_WORDS)
    assert (ROOT / ".env.example").is_file() and ".env" in (ROOT / ".gitignore").read_text().split()


@needs_compose
def test_production_auth_manager_and_only_the_uis_published_on_this_host():
    import importlib

    services = yaml.safe_load(_compose("config", env=SECRETS).stdout)["services"]
    for name, service in services.items():
        if name.startswith("airflow-"):
            manager = service["environment"]["AIRFLOW__CORE__AUTH_MANAGER"]
            module, _, cls = manager.rpartition(".")
            assert cls == "FabAuthManager" and getattr(importlib.import_module(module), cls)  # installed here too
            assert service["environment"]["AIRFLOW__API__SECRET_KEY"] == "w"  # what FAB signs its sessions with
    published = {name: service.get("ports", []) for name, service in services.items() if service.get("ports")}
    # Airflow's UI (with sign-in) and MLflow's (without: loopback only, or behind your own proxy).
    assert sorted(published) == ["airflow-api-server", "mlflow"], published
    for ports in published.values():
        port = ports[0]
        assert (port.get("host_ip") if isinstance(port, dict) else str(port).split(":")[0]) == "127.0.0.1", port


@needs_compose
def test_compose_follows_the_official_airflow_conventions():
    """Non-root services, a health check on every long-running service, an init service the others wait for,
    training on the Spark workers, and an image that keeps secrets and local state out."""
    services = yaml.safe_load(_compose("config", env=SECRETS).stdout)["services"]
    for name, service in services.items():
        if name == "postgres":
            continue  # the official image drops to its own user
        assert str(service.get("user", "")).split(":")[0] not in ("", "0", "root"), name
    for name, service in services.items():
        if name != "airflow-init":
            assert "healthcheck" in service, f"{name} has no health check"
        if name.startswith("airflow-") and name != "airflow-init":
            assert service["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
            assert service["environment"]["IM_TRAINING_LAUNCHER"] == "spark"
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".env", ".venv", "lake", "jars", "airflow_home"} <= set(ignored)
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "scripts/install_jars.sh" in dockerfile and "USER app" in dockerfile
    assert "-r conf/requirements.lock" in dockerfile
