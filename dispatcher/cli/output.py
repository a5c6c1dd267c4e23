"""What the commands print: status, results (JSON lines or CSV), the campaigns table."""

from __future__ import annotations

import csv
import sys
from typing import TextIO

import orjson

from dispatcher.client import Client
from dispatcher.export import CSV_HEADER, csv_row, iso_ms, ndjson_line
from dispatcher.model import CampaignStatus
from dispatcher.runtime import stop_if_cancelled


def print_status(st: CampaignStatus, as_json: bool) -> None:
    if as_json:
        print(orjson.dumps(st.as_dict()).decode())
        return
    print(f"campaign {st.id}  {st.provider}/{st.account}  state: {st.state}")
    counts = "  ".join(f"{k} {v}" for k, v in sorted(st.counts.items()))
    print(f"sent:  total {st.total}  {counts}  pending {st.pending}")
    finals = "  ".join(f"{k} {v}" for k, v in sorted(st.finals.items()))
    print(f"final: {finals or 'none yet'}  open {st.open}")
    if st.share is not None:
        print(f"share of {st.provider}/{st.account}'s rate: {st.share:.0%}")
    if st.parked:
        why = ", ".join(f"{k} {v}" for k, v in sorted(st.parked.items()))
        print(
            f"unknown fate: {sum(st.parked.values())} parked ({why}), waiting for "
            f"{st.provider} to say whether it has them"
        )
    if st.reason:
        print(f"reason: {st.reason}")
    if st.archived_at is not None:
        print(f"archived: {iso_ms(st.archived_at)} (read from its archive file)")


async def write_results(client: Client, campaign_id: str, as_csv: bool, output: str | None) -> int:
    """Every result to ``output`` (or stdout). An unknown campaign is refused before the
    file is created, so a failed command leaves no header-only file behind."""
    await client.status(campaign_id)  # CampaignNotFound before anything is written
    # A command-line tool writing its own output file: nothing else shares this loop.
    out: TextIO = open(output, "w", newline="") if output else sys.stdout  # noqa: ASYNC230, SIM115
    try:
        if as_csv:
            writer = csv.writer(out)
            writer.writerow(CSV_HEADER)
            async for r in client.results(campaign_id):
                stop_if_cancelled()
                writer.writerow(csv_row(r))
        else:
            async for r in client.results(campaign_id):
                stop_if_cancelled()
                out.write(ndjson_line(r).decode())
    finally:
        if output:
            out.close()
    return 0


def print_campaigns(listed: list[CampaignStatus], as_json: bool) -> None:
    if as_json:
        for st in listed:
            print(orjson.dumps(st.as_dict()).decode())
        return
    if not listed:
        print("no campaigns", file=sys.stderr)
        return
    print(f"{'id':<16}  {'provider':<20}  {'state':<9}  {'created (UTC)':<20}  sent/total")
    for st in listed:
        created = iso_ms(st.created_at)[:19].replace("T", " ")
        who = f"{st.provider}/{st.account}"
        print(f"{st.id:<16}  {who:<20}  {st.state:<9}  {created:<20}  {st.recorded}/{st.total}")
