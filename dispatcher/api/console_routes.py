"""The web console: a static page and its script and style, served by the API process.

``GET /console`` is the page, ``GET /console/static/<file>`` its files (from the package
folder ``console/``), ``GET /`` a redirect to the page. None of them needs a token: the page
asks for one and sends it with every ``/v1`` call it makes. The files are read once, when
the routes are added, and served with a strict Content-Security-Policy (everything from this
origin, nothing inline), ``nosniff`` and an ETag.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

CONSOLE_DIR = Path(__file__).resolve().parent / "console"
PAGE = "index.html"
#: Only these suffixes are served, with these types; anything else in the folder is not.
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
CSP = (
    "default-src 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",  # revalidate with the ETag: a new version shows at once
}


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    content_type: str
    etag: str

    def response(self, request: web.Request) -> web.Response:
        headers = {**HEADERS, "ETag": self.etag}
        if self.etag in request.headers.get("If-None-Match", "").replace(" ", "").split(","):
            return web.Response(status=304, headers=headers)
        return web.Response(body=self.body, headers={**headers, "Content-Type": self.content_type})


def load_assets(folder: Path = CONSOLE_DIR) -> dict[str, Asset]:
    """The console's files by name; the page must be there."""
    assets: dict[str, Asset] = {}
    for path in sorted(folder.iterdir()):
        content_type = CONTENT_TYPES.get(path.suffix)
        if content_type is None or not path.is_file():
            continue
        body = path.read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        assets[path.name] = Asset(body, content_type, etag)
    if PAGE not in assets:
        raise FileNotFoundError(f"the console page is missing: {folder / PAGE}")
    return assets


def add_console_routes(app: web.Application) -> None:
    """Add ``GET /``, ``GET /console`` and ``GET /console/static/{name}`` to ``app``."""
    assets = load_assets()
    page = assets[PAGE]
    static = {name: a for name, a in assets.items() if name != PAGE}

    async def root(_request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/console")

    async def console(request: web.Request) -> web.StreamResponse:
        return page.response(request)

    async def static_file(request: web.Request) -> web.StreamResponse:
        asset = static.get(request.match_info["name"])
        if asset is None:
            raise web.HTTPNotFound(headers={"X-Content-Type-Options": "nosniff"})
        return asset.response(request)

    app.router.add_get("/", root)
    app.router.add_get("/console", console)
    app.router.add_get("/console/", root)
    app.router.add_get("/console/static/{name}", static_file)
