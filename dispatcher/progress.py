"""Live progress of a campaign (``status --watch`` and the demo), on stderr.

On a terminal it is a progress bar; otherwise (a log, a pipe) one line whenever the progress
changes. Waiting for done, once every recipient has a send result while delivery reports are
still to come, it says so once: ``sent; waiting for N delivery reports``.
"""

from __future__ import annotations

import sys
import time
from typing import Literal

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from dispatcher.client import Client
from dispatcher.model import CampaignState, CampaignStatus
from dispatcher.runtime import stop_if_cancelled

REFRESH_S = 0.25
Until = Literal["sent", "done"]


def _summary(st: CampaignStatus) -> str:
    parts = [f"{k} {v}" for k, v in sorted(st.counts.items())]
    if st.parked:
        parts.append(f"{sum(st.parked.values())} of unknown fate, asking {st.provider}")
    return ", ".join(parts) or "waiting for a worker"


def finished(st: CampaignStatus, until: Until) -> bool:
    """Whether ``watch(…, until)`` stops at ``st``: paused, or sent / done as asked."""
    if st.state == CampaignState.PAUSED or st.done:
        return True
    return until == "sent" and st.sent


def waiting_note(st: CampaignStatus) -> str:
    return f"sent; waiting for {st.open} delivery report{'s' if st.open != 1 else ''}"


async def watch(
    client: Client, campaign_id: str, limit_s: float = 24 * 3600, until: Until = "sent"
) -> CampaignStatus:
    """Show progress until every recipient has a send result (``until="done"``: a final
    status, delivery reports included), or the campaign is paused, or ``limit_s`` passes;
    the last status. The default is ``Client.wait``'s (the demo); ``status --watch`` asks
    for done unless told otherwise."""
    st = await client.status(campaign_id)
    console = Console(file=sys.stderr)
    deadline = time.monotonic() + limit_s
    if not console.is_terminal:
        return await _lines(client, st, until, deadline)
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[summary]}"),
    )
    noted = False
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(campaign_id, total=st.total, summary=_summary(st))
        while True:
            bar.update(task, completed=st.recorded, summary=_summary(st))
            if finished(st, until) or time.monotonic() >= deadline:
                return st
            if st.sent and not noted:
                bar.console.print(waiting_note(st))
                noted = True
            st = await _next(client, st)


async def _lines(
    client: Client, st: CampaignStatus, until: Until, deadline: float
) -> CampaignStatus:
    """No terminal: a line for each change, flushed, so a log or a pipe follows along."""
    last = ""
    noted = False
    while True:
        line = (
            f"{st.id}: {st.recorded}/{st.total} sent, {st.total - st.open} final ({_summary(st)})"
        )
        if line != last:
            print(line, file=sys.stderr, flush=True)
            last = line
        if finished(st, until) or time.monotonic() >= deadline:
            return st
        if st.sent and not noted:
            print(waiting_note(st), file=sys.stderr, flush=True)
            noted = True
        st = await _next(client, st)


async def _next(client: Client, st: CampaignStatus) -> CampaignStatus:
    # Returns at once when the campaign moves on (sent: only once it is done); otherwise
    # it paces the refresh.
    st = await client.wait(st.id, REFRESH_S, final=st.sent)
    stop_if_cancelled()
    return st
