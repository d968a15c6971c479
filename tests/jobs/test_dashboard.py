"""The nightly dashboard: every panel drawn from the lake's tables, the page rendered by a real browser (Debian's
headless Chromium) which must load every plot, and the Airflow plugin that serves it only to signed-in users."""
from __future__ import annotations

import datetime as dt
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from jobs.dashboard import FOLDER
from tests.conftest import SCORE_DATES, run_jobs

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
NIGHT = dt.date(2024, 11, 21)


def rendered(page: Path, screenshot: Path | None = None) -> tuple[int, int]:
    """(plots on the page, plots the browser loaded), from the DOM after the page's load event."""
    assert CHROMIUM, "chromium is not installed: `make test` installs it (apt-get install chromium)"
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--window-size=1400,2400"]
    dom = subprocess.run([*flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120).stdout
    body = re.search(r"<body[^>]*>", dom).group(0)
    if screenshot is not None:
        subprocess.run([*flags, f"--screenshot={screenshot}", page.as_uri()], capture_output=True, timeout=120)
    return (int(re.search(r'data-plots="(\d+)"', body).group(1)),
            int(re.search(r'data-plots-loaded="(\d+)"', body).group(1)))


@pytest.fixture(scope="module")
def small_lake(tmp_path_factory) -> Path:
    """Every table a panel reads, a few rows each in the contract's columns, over a week of nights."""
    lake = tmp_path_factory.mktemp("dashboard") / "lake"
    days = [NIGHT - dt.timedelta(days=d) for d in range(6, -1, -1)]
    decided = dt.datetime(2024, 11, 22, 3, tzinfo=dt.timezone.utc)
    write_deltalake(str(lake / "model_decisions"), pa.table({
        "decided_at": [decided - dt.timedelta(days=7), decided], "candidate": ["2024-11-14.1", "2024-11-21.1"],
        "promoted": [True, False], "candidate_value": [0.61, 0.62], "best_baseline_value": [0.58, 0.615],
        "baseline_difference": [0.03, 0.005], "baseline_low": [0.01, -0.004], "baseline_high": [0.05, 0.014]}))
    write_deltalake(str(lake / "pipeline_runs"), pa.table({
        "run_date": days * 2, "stage": ["validate"] * 7 + ["ingest"] * 7, "status": ["succeeded"] * 14,
        "dq_severity": ["passed"] * 5 + ["warning", "critical"] + ["passed"] * 7,
        "category_divergence": [0.02, 0.03, 0.05, 0.12, 0.04, 0.03, 0.02] + [None] * 7}))
    write_deltalake(str(lake / "events_quarantine"), pa.table({
        "ingest_date": [d for d in days for _ in range(3)], "reason": ["malformed_json", "bot_user", "bot_user"] * 7}),
        partition_by=["ingest_date"])
    categories = ["fashion.bags", "<b>pets.dog</b>", "auto.parts"]  # a name is text on a plot, never markup
    write_deltalake(str(lake / "category_demand_forecast"), pa.table({
        "score_date": [NIGHT] * 3, "category": categories, "expected_users_change": [4.0, -2.5, None]}),
        partition_by=["score_date"])
    write_deltalake(str(lake / "marketing_segments"), pa.table({
        "score_date": [NIGHT] * 5, "category": categories + categories[:2]}), partition_by=["score_date"])
    write_deltalake(str(lake / "user_interest_predictions"), pa.table({
        "score_date": [NIGHT] * 200, "migration_probability": [i / 200 for i in range(200)]}),
        partition_by=["score_date"])
    return lake


def test_every_panel_is_drawn_and_the_browser_loads_every_plot(small_lake, tmp_path):
    code, out, err = run_jobs("dashboard", "--lake", str(small_lake), "--date", NIGHT.isoformat())
    assert code == 0, err
    assert "7 of 7 panels plotted" in out
    night = small_lake / FOLDER / NIGHT.isoformat()
    shot = tmp_path / "dashboard.png"
    assert rendered(night / "index.html", shot) == (7, 7)
    assert rendered(small_lake / FOLDER / "index.html") == (7, 7)  # the front page: the newest night
    from PIL import Image

    with Image.open(shot) as image:  # not a blank page: the plots' colours are on it
        assert len(image.convert("RGB").getcolors(1 << 20) or []) > 50
    # The check can fail: a plot that does not load is counted as such.
    (night / "migration.png").unlink()
    assert rendered(night / "index.html") == (7, 6)
    # A night's links to the other nights resolve from its own folder.
    assert f'href="../{NIGHT}/index.html"' in (night / "index.html").read_text()


def test_an_older_night_leaves_the_front_page_and_a_table_not_yet_written_is_said_so(small_lake, tmp_path):
    front = (small_lake / FOLDER / "index.html").read_text()
    code, out, err = run_jobs("dashboard", "--lake", str(small_lake), "--date", (NIGHT - dt.timedelta(days=3)).isoformat())
    assert code == 0 and "0 of 7" not in out, err
    assert (small_lake / FOLDER / "index.html").read_text() == front
    empty = tmp_path / "young"
    write_deltalake(str(empty / "pipeline_runs"), pa.table({
        "run_date": [NIGHT], "stage": ["ingest"], "status": ["failed"], "dq_severity": ["critical"],
        "category_divergence": pa.array([None], pa.float64())}))
    code, out, err = run_jobs("dashboard", "--lake", str(empty), "--date", NIGHT.isoformat())
    assert code == 0 and "1 of 7 panels plotted" in out, err
    page = empty / FOLDER / NIGHT.isoformat() / "index.html"
    assert page.read_text().count("No data yet.") == 6 and rendered(page) == (1, 1)
    assert not [p for p in (empty / FOLDER).iterdir() if p.name.startswith(".")]  # no half-built folder left


def test_on_the_pipelines_own_scored_lake(scored_lake, tmp_path):
    lake = tmp_path / "lake"
    shutil.copytree(scored_lake, lake, ignore=shutil.ignore_patterns("raw", "_gx"))
    code, out, err = run_jobs("dashboard", "--lake", str(lake), "--date", SCORE_DATES[-1].isoformat())
    assert code == 0, err
    plotted = int(re.search(r"(\d) of 7 panels plotted", out).group(1))
    assert plotted >= 4  # quarantine, demand, segments, migration at least: the scored lake has them
    assert rendered(lake / FOLDER / SCORE_DATES[-1].isoformat() / "index.html") == (plotted, plotted)


def test_the_airflow_plugin_serves_the_pages_only_to_signed_in_users(small_lake, tmp_path, monkeypatch):
    """Airflow loads the plugin (its nav entry and app); the app refuses requests without Airflow's session and
    paths outside the dashboard folder, and serves the pages to a user holding a token Airflow signed."""
    env = {"AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"), "AIRFLOW_HOME": str(tmp_path / "airflow"),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "PYTHONPATH": str(ROOT), "IM_LAKE": str(small_lake)}
    listed = subprocess.run([sys.executable, "-m", "airflow", "plugins", "-o", "json"], capture_output=True, text=True,
                            env={**__import__("os").environ, **env}, timeout=120)
    assert '"name": "interest_migration"' in listed.stdout, listed.stderr[-2000:]
    assert '"url_prefix": "/interest-migration"' in listed.stdout and '"destination": "nav"' in listed.stdout
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    sys.path.insert(0, str(ROOT / "plugins"))
    try:
        import interest_migration as plugin
    finally:
        sys.path.remove(str(ROOT / "plugins"))
    from airflow.api_fastapi.app import create_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    run_jobs("dashboard", "--lake", str(small_lake), "--date", NIGHT.isoformat())
    client = TestClient(plugin.create_app(small_lake / FOLDER))
    assert client.get("/").status_code == 401
    from airflow import settings
    from airflow.models.revoked_token import RevokedToken

    # Token checks look up revocations in Airflow's metadata database: the one table of it they read.
    RevokedToken.__table__.create(settings.engine, checkfirst=True)
    manager = create_auth_manager()
    manager.init()
    assert client.get("/", cookies={"_token": "forged.token.value"}).status_code in (401, 403)
    token = manager.generate_jwt(SimpleAuthManagerUser(username="analyst", role="viewer"))
    client.cookies.set("_token", token)
    assert "night of 2024-11-21" in client.get("/").text
    image = client.get(f"/{NIGHT}/models.png")
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    (small_lake / "secret.txt").write_text("not for the dashboard")
    assert image.headers["x-content-type-options"] == "nosniff"
    (small_lake / FOLDER / "planted.js").write_text("alert(1)")  # a file the dashboard never writes
    for path in ("/..%2Fsecret.txt", "/%2E%2E/secret.txt", f"/{NIGHT}/..%2F..%2Fsecret.txt", "/nope.html",
                 "/planted.js"):
        assert client.get(path).status_code == 404, path
