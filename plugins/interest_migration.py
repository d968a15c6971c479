"""The Airflow UI's way to the nightly dashboard (``jobs/dashboard.py``): a nav entry and the pages behind it.

An Airflow 3 plugin: ``external_views`` adds "Interest migration" to the UI's
navigation, showing the newest night's page inside the UI, and a FastAPI app
mounted on the API server at ``/interest-migration/`` serves
``<lake>/dashboard`` (the pages and their plots). Plugin apps are not behind
Airflow's sign-in by themselves, so every request here must carry the UI's
session (its JWT cookie) or a bearer token, checked by Airflow's own
``requires_authenticated``; and only files under the dashboard folder are
served, and only its pages and plots (a path that resolves elsewhere, through
``..`` or a link, or any other kind of file, is not found).
"""
from __future__ import annotations

from pathlib import Path

from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import FileResponse

from jobs.core.config import PipelineConfig

PREFIX = "/interest-migration"
# What the dashboard writes, and all that is served: its pages and their plots.
SERVED = {".html": "text/html; charset=utf-8", ".png": "image/png"}


def _authenticated():
    from airflow.api_fastapi.core_api.security import requires_authenticated

    return requires_authenticated()


AUTHENTICATED = _authenticated()


def create_app(dashboard: Path) -> FastAPI:
    app = FastAPI(title="Interest migration dashboard", dependencies=[Depends(AUTHENTICATED)])
    root = dashboard.resolve()

    @app.get("/{path:path}")
    def page(path: str = "") -> FileResponse:
        target = (root / path).resolve()
        if target.is_dir():
            target = target / "index.html"
        if not target.is_relative_to(root) or not target.is_file() or target.suffix not in SERVED:
            raise HTTPException(status_code=404, detail="no such dashboard page (has the nightly run written one?)")
        return FileResponse(target, media_type=SERVED[target.suffix], headers={"X-Content-Type-Options": "nosniff"})

    return app


class InterestMigrationPlugin(AirflowPlugin):
    name = "interest_migration"
    fastapi_apps = [{"app": create_app(PipelineConfig().lake / "dashboard"), "url_prefix": PREFIX,
                     "name": "Interest migration dashboard"}]
    external_views = [{"name": "Interest migration", "href": f"{PREFIX.lstrip('/')}/", "destination": "nav",
                       "url_route": "interest-migration", "category": "browse"}]
