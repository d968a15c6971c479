"""Great Expectations' Data Docs page views, with their Jinja templates compiled once per machine, not per page.

GX builds a fresh Jinja environment for every page it renders, so each validation's Data Docs update (its
result page and the index) compiled the same templates again: about half a second of every suite run
(cProfile, docs/performance.md). These views are GX's own with Jinja's file-system bytecode cache (keyed by
each template's source, so a GX upgrade recompiles; in a per-user folder of the system's temporary
directory, which Jinja creates private). ``gx_run.open_context`` names them in the lake's Data Docs site.

A cache never fails a page: where Jinja finds the folder unsafe (not ours, not private, a symlink) there is
none, and a template it cannot load or store is compiled as it would be without one.
"""
from __future__ import annotations

from jinja2 import FileSystemBytecodeCache

from great_expectations.render.view import DefaultJinjaIndexPageView, DefaultJinjaPageView

_CACHE: FileSystemBytecodeCache | bool | None = None  # False: this process found no usable folder


class QuietBytecodeCache(FileSystemBytecodeCache):
    """Jinja's file-system cache, whose failures (a full disk, a folder removed, a truncated file) only cost the
    compilation it would have saved."""

    def load_bytecode(self, bucket) -> None:
        try:
            super().load_bytecode(bucket)
        except Exception:  # noqa: BLE001 - a damaged entry is a cache miss
            bucket.reset()

    def dump_bytecode(self, bucket) -> None:
        try:
            super().dump_bytecode(bucket)
        except OSError:
            pass


def _bytecode_cache() -> FileSystemBytecodeCache | None:
    global _CACHE
    if _CACHE is None:
        try:
            _CACHE = QuietBytecodeCache()
        except (OSError, RuntimeError):  # Jinja's refusal of an unsafe folder is a RuntimeError
            _CACHE = False
    return _CACHE or None


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
