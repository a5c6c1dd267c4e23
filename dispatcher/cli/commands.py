"""The commands that talk to Redis through a :class:`Client`."""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict

import orjson

from dispatcher.cli.campaign import campaign_source
from dispatcher.cli.output import print_campaigns, print_status, write_results
from dispatcher.client import Client, NothingToSend
from dispatcher.config import Settings
from dispatcher.model import CampaignError, CampaignState
from dispatcher.runtime import connect, ensure_reachable

#: The commands :func:`client_command` runs.
CLIENT_COMMANDS = frozenset(
    {"enqueue", "status", "results", "inbound", "campaigns", "pause", "resume", "cancel", "retry"}
    | {"archive", "purge"}
)


async def client_command(args: argparse.Namespace, settings: Settings, url: str) -> int:
    # One quick PING first: an unreachable Redis is one line at once, not a traceback after
    # the retries the resilient client below makes.
    await ensure_reachable(url)
    client = Client(settings=settings, redis=connect(url))
    try:
        return await _run(client, args)
    finally:
        await client.redis.aclose()


async def _run(client: Client, args: argparse.Namespace) -> int:
    cmd = args.command
    if cmd == "enqueue":
        return await _enqueue(client, args)
    if cmd == "status":
        if args.watch:
            from dispatcher.progress import watch

            st = await watch(client, args.campaign_id, until=args.until)
        else:
            st = await client.status(args.campaign_id)
        print_status(st, args.json)
        return 0
    if cmd == "results":
        return await write_results(client, args.campaign_id, args.csv, args.output)
    if cmd == "campaigns":
        if args.limit < 1:
            raise CampaignError("--limit", "must be at least 1")
        print_campaigns((await client.campaigns(args.limit)).items, args.json)
        return 0
    if cmd == "inbound":
        for entry in await client.inbound(args.count):
            if args.json:
                print(orjson.dumps(entry).decode())
            else:
                extra = f" (keyword {entry['keyword']})" if entry.get("keyword") else ""
                print(f"{entry['provider']:<10} {entry['mobile']:<16} {entry['text']}{extra}")
        return 0
    if cmd in ("archive", "purge"):
        from dispatcher.cli.archive import retention_command

        return await retention_command(client, args)
    if cmd == "retry":
        dead = await client.dead(args.campaign_id)
        n = await client.retry(args.campaign_id)
        print(f"{n} recipient(s) queued again")
        for reason in sorted(set(dead.values()))[:10]:
            print(f"  had failed with: {reason}", file=sys.stderr)
        return 0
    return await _control(client, cmd, args.campaign_id)


async def _enqueue(client: Client, args: argparse.Namespace) -> int:
    try:
        campaign, source = campaign_source(args)
        answer = await client.enqueue(campaign, recipients=source, allow_empty=args.allow_empty)
    except NothingToSend as exc:
        raise CampaignError(exc.field, f"{exc.message}; use --allow-empty to enqueue it") from None
    if args.json:
        print(orjson.dumps(asdict(answer)).decode())
    else:
        print(answer.id)
        note = " (existing campaign for this idempotency key)" if answer.existing else ""
        print(
            f"enqueued {answer.valid} recipient(s) in {answer.chunks} chunk(s); "
            f"{answer.invalid} invalid, {answer.duplicates} duplicate(s){note}",
            file=sys.stderr,
        )
    return 0


async def _control(client: Client, cmd: str, cid: str) -> int:
    """pause, resume, cancel. Asking for what already is so does nothing, says so, and
    exits 0; only resuming a cancelled campaign is an error."""
    if cmd == "pause":
        if await client.pause(cid):
            print("paused")
        else:
            print(f"already {await client.state(cid)}: nothing to do")
        return 0
    if cmd == "cancel":
        moved = await client.cancel(cid)
        print("cancelled" if moved >= 0 else "already cancelled: nothing to do")
        for batch, said in (await client.cancel_at_provider(cid)).items():
            print(f"provider campaign {batch}: {said}")
        return 0
    if cmd == "resume":
        n = await client.resume(cid)
        if n >= 0:
            print(f"resumed: {n} chunk(s) queued again")
            return 0
        state = await client.state(cid)
        if state == CampaignState.CANCELLED:
            print("error: the campaign is cancelled; it cannot be resumed", file=sys.stderr)
            return 1
        print(f"not paused ({state}): nothing to do")
        return 0
    raise AssertionError(cmd)
