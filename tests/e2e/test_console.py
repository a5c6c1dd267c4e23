"""The web console in a real browser: Debian's chromium (/usr/bin/chromium), driven by
Playwright, against real processes (the mock provider, a worker and the API) and Redis.

No browser is downloaded: without /usr/bin/chromium the test is skipped and says why, and
with DISPATCHER_REQUIRE_BROWSER=1 (``make browser``, CI) it fails instead.

The campaign is slow on purpose (RATE a second for its account), so that the test can watch
its progress move in the page, pause it with the button and see it stop. Every wait is on
something the page or the API shows, with a deadline: the page's own attributes through
Playwright's waits, the API's server-sent events, never a sleep.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from playwright.async_api import ConsoleMessage, Dialog, Page, async_playwright, expect

from tests.e2e.conftest import API_TOKEN, System

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REQUIRE_ENV = "DISPATCHER_REQUIRE_BROWSER"
PROVIDER = "ycloud"  # one recipient a request: progress moves a recipient at a time
N = 3000
RATE = 40  # recipients a second for the account: N takes over a minute
FAULTS = 0.05  # the share of send requests the mock answers 503
BARRIER = 120  # a second campaign on the same account, sent while the first is paused
DEADLINE_MS = 30_000
DEADLINE_S = 60.0

Status = dict[str, Any]
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


@pytest.fixture
def chromium() -> str:
    """The browser's path; skips (or fails, with DISPATCHER_REQUIRE_BROWSER=1) without it.
    Asked for first, so that nothing is started for a test that cannot run."""
    if CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK):
        return str(CHROMIUM)
    why = f"no browser: {CHROMIUM} is not installed (apt-get install chromium)"
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{why}; {REQUIRE_ENV}=1 requires it")
    pytest.skip(why)


def sent(st: Status) -> int:
    """Recipients with a send result: what the console's progress bars show."""
    return int(st["total"]) - int(st["pending"])


def enqueue(system: System, path: Path, count: int, first: int) -> str:
    path.write_text("".join(f"+{first + i}\n" for i in range(count)))
    done = system.cli(
        "enqueue", "--provider", PROVIDER, "--text", "console test", "--recipients", str(path)
    )
    return done.stdout.strip()


async def get_json(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(url, headers=AUTH) as r:
        assert r.status == 200, await r.text()
        return orjson.loads(await r.read())


async def get_status(http: aiohttp.ClientSession, base: str, cid: str) -> Status:
    st: Status = await get_json(http, f"{base}/v1/campaigns/{cid}")
    return st


async def first_status(
    http: aiohttp.ClientSession, base: str, cid: str, wanted: Callable[[Status], bool]
) -> Status:
    """The first status event of the campaign's stream for which ``wanted`` holds."""
    url = f"{base}/v1/campaigns/{cid}/events"
    async with asyncio.timeout(DEADLINE_S), http.get(url, headers=AUTH) as r:
        assert r.status == 200, await r.text()
        assert r.content_type == "text/event-stream"
        event, data = "", []
        async for raw in r.content:
            line = raw.decode().rstrip("\r\n")
            if line:
                field, _, value = line.partition(":")
                if field == "event":
                    event = value.strip()
                elif field == "data":
                    data.append(value.removeprefix(" "))
                continue
            if event == "status" and data:
                st: Status = orjson.loads("\n".join(data))
                if wanted(st):
                    return st
            assert event != "end", f"the stream of {cid} ended first"
            event, data = "", []
    raise AssertionError(f"the stream of {cid} closed first")


async def value_now(page: Page, testid: str) -> int:
    raw = await page.get_by_test_id(testid).get_attribute("aria-valuenow")
    assert raw is not None, testid
    return int(raw)


async def rises(page: Page, testid: str, above: int) -> int:
    """Wait until the progress bar ``testid`` shows more than ``above``; what it shows."""
    await page.wait_for_function(
        """([testid, above]) => {
            const bar = document.querySelector(`[data-testid="${CSS.escape(testid)}"]`);
            return bar !== null && Number(bar.getAttribute("aria-valuenow")) > above;
        }""",
        arg=[testid, above],
        timeout=DEADLINE_MS,
    )
    return await value_now(page, testid)


async def test_console_shows_progress_and_pauses_with_the_button(
    chromium: str, system: System, tmp_path: Path
) -> None:
    # One attempt a request, and the mock fails FAULTS of them: dead letters to show.
    limits = {"rate_per_second": RATE, "chunk_size": 100, "concurrency": 4, "max_attempts": 1}
    system.write_config(**{PROVIDER: limits})
    await system.mock_settings(faults=[["5xx", FAULTS]])
    cid = enqueue(system, tmp_path / "a.txt", N, 447911000000)
    base = system.api()
    system.worker()
    expect.set_options(timeout=DEADLINE_MS)

    problems: list[str] = []  # errors in the page: script errors, CSP refusals, failed loads
    dialogs: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(message.text)

    async def on_dialog(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        await dialog.accept()

    async with aiohttp.ClientSession() as http, async_playwright() as pw:
        context = await pw.chromium.launch_persistent_context(
            tmp_path / "profile", executable_path=chromium, headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = context.pages[0] if context.pages else await context.new_page()
            page.on("console", on_console)
            page.on("pageerror", lambda exc: problems.append(f"uncaught: {exc}"))
            await page.goto(f"{base}/console")

            # The page asks for the token; one the API refuses brings the form back.
            token = page.get_by_label("API token")
            await token.fill("not-a-token-the-api-knows")
            await page.get_by_role("button", name="Open the console").click()
            await expect(page.get_by_test_id("login-error")).to_contain_text("token")
            await token.fill(API_TOKEN)
            await page.get_by_role("button", name="Open the console").click()
            await expect(page.get_by_test_id("campaigns")).to_be_visible()

            # The list shows the campaign, and its progress moves (the list is live).
            row_bar = f"progress-{cid}"
            shown = await rises(page, row_bar, -1)
            for _ in range(2):
                shown = await rises(page, row_bar, shown)

            # Its details follow its event stream.
            await page.get_by_test_id(f"row-{cid}").get_by_role("link").click()
            await expect(page.get_by_test_id("detail-id")).to_have_text(cid)
            await expect(page.get_by_test_id("stream-status")).to_have_text("live")
            shown = await rises(page, "detail-progress", shown)
            await expect(page.get_by_test_id("counts-accepted")).to_be_visible()

            # Pause with the button: the page and the API say paused.
            await page.get_by_role("button", name="Pause").click()
            await expect(page.get_by_test_id("detail-state")).to_have_text("paused")
            await expect(page.get_by_test_id("action-message")).to_contain_text("paused")
            await expect(page.get_by_role("button", name="Pause")).to_be_disabled()
            await expect(page.get_by_role("button", name="Resume")).to_be_enabled()
            st = await get_status(http, base, cid)
            assert st["state"] == "paused" and st["reason"] == "paused by operator", st
            assert st["pending"] > 0, st

            # And it stops: a second campaign of the same account is sent, through the same
            # worker, while the first's count stays where it was, from the second's events
            # at half way (the first's last authorised requests long gone by then: they
            # leave within a second, and half of BARRIER takes longer at RATE) to its end.
            bid = enqueue(system, tmp_path / "b.txt", BARRIER, 447922000000)
            await first_status(http, base, bid, lambda s: sent(s) >= BARRIER // 2)
            before = await get_status(http, base, cid)
            barrier = await first_status(http, base, bid, lambda s: bool(s["sent"]))
            after = await get_status(http, base, cid)
            assert after["state"] == "paused", after
            assert sent(after) == sent(before) < N, (before, after)
            # Nothing the provider took is missing from the two campaigns' counts.
            stats = (await system.mock_get("/_mock/stats"))["providers"][PROVIDER]
            taken = after["counts"].get("accepted", 0) + barrier["counts"].get("accepted", 0)
            assert stats["accepted"] == taken, (stats, after, barrier)
            # The page shows where it stopped, in the details and in the list.
            held = str(sent(after))
            await expect(page.get_by_test_id("detail-progress")).to_have_attribute(
                "aria-valuenow", held
            )
            await expect(page.get_by_test_id(f"row-{bid}")).to_be_visible()
            await expect(page.get_by_test_id(row_bar)).to_have_attribute("aria-valuenow", held)
            # Its counts and dead letters, as the API has them.
            failed = after["counts"].get("failed", 0)
            assert failed > 0, after  # FAULTS of a few hundred requests
            await expect(page.get_by_test_id("counts-failed")).to_contain_text(str(failed))
            dead = await get_json(http, f"{base}/v1/campaigns/{cid}/dead")
            assert len(dead["items"]) == failed, dead
            rows = page.get_by_test_id("dead-letters").locator("tbody tr")
            await expect(rows).to_have_count(failed)
            first = dead["items"][0]
            await expect(rows.first).to_contain_text(str(first["index"]))
            await expect(rows.first).to_contain_text(first["reason"])

            # Resume: it moves again. Cancel: asked to confirm, then cancelled.
            await page.get_by_role("button", name="Resume").click()
            await expect(page.get_by_test_id("detail-state")).to_have_text("queued")
            await rises(page, "detail-progress", int(held))
            page.once("dialog", on_dialog)
            await page.get_by_role("button", name="Cancel").click()
            await expect(page.get_by_test_id("detail-state")).to_have_text("cancelled")
            assert len(dialogs) == 1 and cid in dialogs[0], dialogs
            assert (await get_status(http, base, cid))["state"] == "cancelled"
        finally:
            await context.close()
    # The refused token's 401 is the only error the page may have logged.
    assert [p for p in problems if "401" not in p] == [], problems
