"""Smsclouds message statuses, polled (seed 004, "Status of message"): ``GET
api/v3/campaign/{id}/messages`` for each campaign our sends created, read into reports."""

from __future__ import annotations

import orjson

from dispatcher.model import Status
from dispatcher.providers.base import BadPush, Report, map_status

__all__ = ["STATUSES", "messages_path", "parse_messages"]

#: "Status of message", in our vocabulary. Smsclouds has no delivery reports: "sent" (handed
#: to the carrier) is the last it will say, so it is final here as ``submitted``.
STATUSES = {
    "in progress": Status.SENT,
    "sent": Status.SUBMITTED,
    "failed": Status.FAILED,
    "paused": Status.SENT,
    "retried": Status.SENT,
    "cancelled": Status.CANCELLED,
}


def messages_path(batch_id: str) -> str:
    return f"/api/v3/campaign/{batch_id}/messages"


def parse_messages(body: bytes) -> list[Report]:
    """``GET api/v3/campaign/{id}/messages``: one report per message, by message id.

    ``cellphone`` is the national number; the tracker resolves it within the campaign.
    """
    data = orjson.loads(body)
    if not isinstance(data, dict) or "error" in data:
        raise BadPush("body", f"messages call refused: {str(data)[:200]}")
    reports = []
    for item in data.get("data") or []:
        if not isinstance(item, dict) or item.get("id") is None:
            continue
        raw = str(item.get("status", ""))
        reports.append(
            Report(
                status=map_status(raw, STATUSES),
                raw_status=raw,
                message_id=str(item["id"]),
                number=str(item.get("cellphone", "")),
                error_code=None if raw == "sent" else raw.upper().replace(" ", "_"),
            )
        )
    return reports
