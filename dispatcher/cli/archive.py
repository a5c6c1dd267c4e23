"""``archive`` and ``purge``: campaigns out of Redis now, to their archive file or for good.

Each named campaign is handled on its own: one that cannot be (not finished, no such
campaign) is one ``error:`` line on stderr and the others go on; the exit code is then 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable

from dispatcher.client import Client
from dispatcher.errors import DispatcherError
from dispatcher.model import CampaignError
from dispatcher.retention import NotFinished
from dispatcher.runtime import stop_if_cancelled


async def retention_command(client: Client, args: argparse.Namespace) -> int:
    if args.command == "purge":
        return await _each(client, args.campaign_ids, args.force, _purge)
    if args.campaign_ids:
        return await _each(client, args.campaign_ids, args.force, _archive)
    if args.force:
        raise CampaignError("--force", "only with campaign ids: the sweep archives what is due")
    swept = await client.retention.archive_due()
    for cid in swept.archived:
        print(f"archived {cid}")
    for cid, why in swept.failed.items():
        print(f"error: {why}" if cid in why else f"error: campaign {cid}: {why}", file=sys.stderr)
    print(
        f"{len(swept.archived)} campaign(s) archived of {swept.checked} looked at",
        file=sys.stderr,
    )
    return 1 if swept.failed else 0


async def _archive(client: Client, cid: str, force: bool) -> None:
    st = await client.status(cid)  # CampaignNotFound: one error line
    if st.archived_at is not None:
        print(f"{cid} already archived: {client.retention.archive.path(cid)}")
        return
    print(f"archived {cid} to {await client.archive(cid, force=force)}")


async def _purge(client: Client, cid: str, force: bool) -> None:
    had_file = await client.purge(cid, force=force)
    print(f"purged {cid}" + (" and its archive file" if had_file else ""))


Act = Callable[[Client, str, bool], Awaitable[None]]


async def _each(client: Client, cids: list[str], force: bool, act: Act) -> int:
    failed = False
    for cid in cids:
        stop_if_cancelled()
        try:
            await act(client, cid, force)
        except DispatcherError as exc:
            hint = "; --force to do it anyway" if isinstance(exc, NotFinished) else ""
            print(f"error: {exc}{hint}", file=sys.stderr)
            failed = True
    return 1 if failed else 0
