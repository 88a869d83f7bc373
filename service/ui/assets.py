"""Scripts and styles of the pages, all served by this process (no CDN: the UI works offline).

- ``htmx.min.js``: htmx 2.0.11 from npm, vendored in ``service/ui/static`` (0BSD licence, beside it);
- ``plotly.min.js``: from the installed ``plotly`` Python package (``plotly.offline``), so its
  version is the one pinned in ``pyproject.toml`` and no 4.8 MB copy lives in the repository;
- ``charts.js`` and ``segments.css``: the project's own, shared with the report (``models/templates``).

Each is read once on first request and kept in memory; URLs carry a digest of the content, so a
browser may cache them for a year and still sees a new version at once.
"""

from __future__ import annotations

import gzip
import hashlib
import threading
from dataclasses import dataclass
from importlib import resources

from models.report import plotly_js, template_text

STATIC = "static"
_MEDIA_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str
    digest: str
    # compressed once, when first read: plotly.min.js went out as 4.8 MB to every phone that
    # asked for gzip (a product manager's review, 2026-12-08); 1.4 MB so. Assets alone: a page
    # holds a session's CSRF token beside text a visitor chose, which compression would let a
    # third party guess at (BREACH)
    gzipped: bytes = b""


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an ``Accept-Encoding`` header takes gzip (RFC 9110, 12.5.3): by name with a weight
    above 0, or by ``*`` when gzip is not named ("gzip;q=0, *" refuses it)."""
    weights: dict[str, float] = {}
    for part in accept_encoding.split(","):
        name, _, params = part.strip().partition(";")
        weight = params.strip().lower().removeprefix("q=").strip() if params else "1"
        try:
            weights.setdefault(name.strip().lower(), float(weight))
        except ValueError:
            continue
    named = [weights[name] for name in ("gzip", "x-gzip") if name in weights]
    if named:
        return max(named) > 0
    return weights.get("*", 0.0) > 0


def _read(name: str) -> str:
    if name == "plotly.min.js":
        return plotly_js()
    if name in ("charts.js", "segments.css"):
        return template_text(name)
    return resources.files("service.ui").joinpath(STATIC, name).read_text(encoding="utf-8")


ASSET_NAMES = frozenset({"htmx.min.js", "plotly.min.js", "charts.js", "segments.css"})


class Assets:
    """The page assets by name, loaded lazily once."""

    def __init__(self) -> None:
        self._loaded: dict[str, Asset] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> Asset | None:
        if name not in ASSET_NAMES:
            return None
        asset = self._loaded.get(name)
        if asset is None:
            with self._lock:
                body = _read(name).encode("utf-8")
                suffix = name[name.rfind(".") :]
                digest = hashlib.sha256(body).hexdigest()[:16]
                # mtime 0: the same bytes on every worker and restart, as the ETag promises
                compressed = gzip.compress(body, compresslevel=9, mtime=0)
                asset = Asset(body, _MEDIA_TYPES[suffix], digest, compressed)
                self._loaded[name] = asset
        return asset

    def url(self, name: str) -> str:
        asset = self.get(name)
        assert asset is not None, name
        return f"/ui/assets/{name}?v={asset.digest}"
