"""The OpenAPI document's campaign and status objects name exactly the model's fields, so a
field added to ``Campaign`` or ``CampaignStatus`` (``retention_days``, ``archived_at``) is
documented, and accepted by the API's own schema checks, in the same change."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import orjson

from dispatcher.model import Campaign, CampaignStatus, Status
from tests.conftest import repo_root


def document() -> Any:
    return orjson.loads((repo_root() / "dispatcher/api/openapi.json").read_bytes())


def campaign_objects(node: Any) -> list[dict[str, Any]]:
    """Every schema object in the document with the campaign's ``provider`` and ``text``."""
    found = []
    if isinstance(node, dict):
        props = node.get("properties")
        if isinstance(props, dict) and {"provider", "text", "recipients"} <= set(props):
            found.append(node)
        for value in node.values():
            found += campaign_objects(value)
    elif isinstance(node, list):
        for value in node:
            found += campaign_objects(value)
    return found


def test_every_campaign_object_has_the_models_fields() -> None:
    objects = campaign_objects(document()["paths"])
    assert len(objects) == 3  # JSON create, the multipart campaign part, estimate
    for schema in objects:
        assert set(schema["properties"]) == {f.name for f in fields(Campaign)}
        days = schema["properties"]["retention_days"]
        assert (days["minimum"], days["maximum"]) == (0, 3660)


def test_the_status_object_is_what_as_dict_gives() -> None:
    status = document()["components"]["schemas"]["Status"]
    st = CampaignStatus(
        "c", "cloudaten", "default", "done", 1, {}, 0, 0, finals={Status.DELIVERED: 1}
    )
    assert set(status["properties"]) == set(st.as_dict()) == set(status["required"])
