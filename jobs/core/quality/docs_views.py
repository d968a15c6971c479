"""Great Expectations' Data Docs page views, with their Jinja templates compiled once per machine, not per page.

GX builds a fresh Jinja environment for every page it renders, so each validation's Data Docs update (its
result page and the index) compiled the same templates again: about half a second of every suite run
(cProfile, docs/performance.md). These views are GX's own with Jinja's file-system bytecode cache (keyed by
each template's source, so a GX upgrade recompiles; in a per-user folder of the system's temporary
directory, which Jinja creates private). ``gx_run.open_context`` names them in the lake's Data Docs site.
"""
from __future__ import annotations

from jinja2 import FileSystemBytecodeCache

from great_expectations.render.view import DefaultJinjaIndexPageView, DefaultJinjaPageView

_CACHE: FileSystemBytecodeCache | None = None


def _bytecode_cache() -> FileSystemBytecodeCache:
    global _CACHE
    if _CACHE is None:
        _CACHE = FileSystemBytecodeCache()
    return _CACHE


class CachedJinjaPageView(DefaultJinjaPageView):
    """A validation result's or an expectation suite's page."""

    def __init__(self, custom_styles_directory=None, custom_views_directory=None) -> None:
        super().__init__(custom_styles_directory, custom_views_directory)
        self.env.bytecode_cache = _bytecode_cache()


class CachedJinjaIndexPageView(DefaultJinjaIndexPageView):
    """The site's index page."""

    def __init__(self, custom_styles_directory=None, custom_views_directory=None) -> None:
        super().__init__(custom_styles_directory, custom_views_directory)
        self.env.bytecode_cache = _bytecode_cache()
