"""A live progress bar for a campaign (``status --watch`` and the demo)."""

from __future__ import annotations

import sys

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

REFRESH_S = 0.25


def _summary(st: CampaignStatus) -> str:
    parts = [f"{k} {v}" for k, v in sorted(st.counts.items())]
    if st.parked:
        parts.append(f"{sum(st.parked.values())} of unknown fate, asking {st.provider}")
    return ", ".join(parts) or "waiting for a worker"


async def watch(client: Client, campaign_id: str, limit_s: float = 24 * 3600) -> CampaignStatus:
    """Show progress until the campaign is done or paused (or ``limit_s`` passes)."""
    st = await client.status(campaign_id)
    console = Console(file=sys.stderr)
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[summary]}"),
    )
    spent = 0.0
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(campaign_id, total=st.total, summary=_summary(st))
        while spent < limit_s:
            bar.update(task, completed=st.recorded, summary=_summary(st))
            if st.state in (CampaignState.DONE, CampaignState.PAUSED):
                break
            # Returns at once when the campaign finishes; otherwise it paces the refresh.
            st = await client.wait(campaign_id, REFRESH_S)
            spent += REFRESH_S
    return st
