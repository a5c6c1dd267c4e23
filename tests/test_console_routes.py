"""The console's routes on a real aiohttp server: the page and its files, their types, the
Content-Security-Policy, and nothing inline or from elsewhere that the policy would refuse."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from dispatcher.api.console_routes import CONSOLE_DIR, CSP, add_console_routes, load_assets

Client = TestClient[web.Request, web.Application]
TYPES = {
    "console.js": "text/javascript",
    "console.css": "text/css",
    "favicon.svg": "image/svg+xml",
}


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    app = web.Application()
    add_console_routes(app)
    async with TestClient(TestServer(app, host="127.0.0.1")) as c:
        yield c


def assert_secured(headers: Mapping[str, str]) -> None:
    assert headers.get("Content-Security-Policy") == CSP
    assert headers.get("X-Content-Type-Options") == "nosniff"


async def test_the_page_is_html_under_a_strict_policy(client: Client) -> None:
    r = await client.get("/console")
    assert r.status == 200
    assert r.content_type == "text/html" and r.charset == "utf-8"
    assert_secured(r.headers)
    directives = dict(d.strip().split(" ", 1) for d in CSP.split(";"))
    assert directives["default-src"] == "'self'"
    assert "unsafe" not in CSP and "*" not in CSP
    page = await r.text()
    assert '<script src="/console/static/console.js" defer></script>' in page


async def test_every_file_the_page_names_is_served_with_its_type(client: Client) -> None:
    page = await (await client.get("/console")).text()
    named = set(re.findall(r'(?:src|href)="(/console/static/[^"]+)"', page))
    assert named == {f"/console/static/{name}" for name in TYPES}
    for path in sorted(named):
        r = await client.get(path)
        assert r.status == 200, path
        assert r.content_type == TYPES[path.rsplit("/", 1)[1]], path
        assert_secured(r.headers)
        assert (await r.read()) == (CONSOLE_DIR / path.rsplit("/", 1)[1]).read_bytes()


def test_nothing_inline_and_nothing_from_elsewhere() -> None:
    page = (CONSOLE_DIR / "index.html").read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)", page), "inline script"
    assert not re.search(r"<style\b|\sstyle=|\son[a-z]+=", page), "inline style or handler"
    for name in ("index.html", *TYPES):
        text = (CONSOLE_DIR / name).read_text()
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)|url\(|@import", text), name
    script = (CONSOLE_DIR / "console.js").read_text()
    assert not re.search(r"\beval\(|new Function|innerHTML|new EventSource", script)


async def test_root_and_the_folder_redirect_to_the_page(client: Client) -> None:
    for path in ("/", "/console/"):
        r = await client.get(path, allow_redirects=False)
        assert r.status == 302 and r.headers["Location"] == "/console", path


async def test_unknown_files_are_not_found(client: Client) -> None:
    for path in (
        "/console/static/nope.js",
        "/console/static/index.html",
        "/console/static/..%2Fconsole_routes.py",
        "/console/static/",
    ):
        r = await client.get(path)
        assert r.status == 404, path


async def test_an_unchanged_file_is_not_sent_again(client: Client) -> None:
    first = await client.get("/console/static/console.js")
    etag = first.headers["ETag"]
    again = await client.get("/console/static/console.js", headers={"If-None-Match": etag})
    assert again.status == 304 and await again.read() == b""
    assert again.headers["ETag"] == etag
    other = await client.get("/console/static/console.js", headers={"If-None-Match": '"x"'})
    assert other.status == 200
    head = await client.head("/console")
    assert head.status == 200 and head.content_type == "text/html"


def test_only_known_types_are_loaded_and_the_page_must_be_there(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<!doctype html>")
    (tmp_path / "notes.txt").write_text("not served")
    (tmp_path / "app.js").write_text("")
    assert sorted(load_assets(tmp_path)) == ["app.js", "index.html"]
    (tmp_path / "index.html").unlink()
    with pytest.raises(FileNotFoundError, match="console page"):
        load_assets(tmp_path)
