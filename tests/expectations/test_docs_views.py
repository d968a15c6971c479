"""Data Docs' template cache (jobs/core/quality/docs_views.py) saves compilations and never fails a page."""
from __future__ import annotations

import os
import tempfile

import pytest

from jobs.core.quality import docs_views


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """The system's temporary folder moved to ``tmp_path``, and no cache chosen yet in this process."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(docs_views, "_CACHE", None)
    return tmp_path / f"_jinja2-cache-{os.getuid()}"


def test_templates_compile_once_into_the_cache_and_load_from_it(fresh_cache):
    view = docs_views.CachedJinjaPageView()
    view.env.get_template("page.j2")
    stored = sorted(fresh_cache.iterdir())
    assert stored and all(p.suffix == ".cache" for p in stored)
    again = docs_views.CachedJinjaIndexPageView()
    assert again.env.bytecode_cache is view.env.bytecode_cache
    assert again.env.get_template("page.j2").render  # loaded from the cache, renders
    assert sorted(fresh_cache.iterdir()) == stored


def test_an_unsafe_cache_folder_means_no_cache_not_a_failed_page(fresh_cache, tmp_path):
    (tmp_path / "elsewhere").mkdir()
    fresh_cache.symlink_to(tmp_path / "elsewhere")  # Jinja refuses a symlink: someone else may control it
    view = docs_views.CachedJinjaPageView()
    assert view.env.bytecode_cache is None
    assert view.env.get_template("page.j2") is not None
    assert not any((tmp_path / "elsewhere").iterdir())


def test_a_damaged_entry_or_a_vanished_folder_costs_only_the_compilation(fresh_cache):
    view = docs_views.CachedJinjaPageView()
    view.env.get_template("page.j2")
    for entry in fresh_cache.iterdir():  # valid header, truncated code
        entry.write_bytes(entry.read_bytes()[:40])
    assert docs_views.CachedJinjaPageView().env.get_template("page.j2") is not None
    cache = docs_views.CachedJinjaPageView().env.bytecode_cache
    cache.directory = str(fresh_cache / "gone")  # stores now fail with FileNotFoundError
    assert docs_views.CachedJinjaPageView().env.get_template("index_page.j2") is not None
