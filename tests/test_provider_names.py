"""Provider knowledge lives in the codecs (issue 13): the generic layers ask a codec for a
capability and name no provider, not even in a comment or a docstring."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Every spelling of a provider (or of the codec family two of them share).
NAMES = re.compile(r"cloud[\s_-]?aten|ycloud|cloudsms|smsclouds|one[\s_-]?mobile", re.IGNORECASE)
#: The generic modules, relative to the repository; add one here once it is generic.
GENERIC = [
    *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "dispatcher" / "webhooks").glob("*.py")),
    "dispatcher/account_api.py",
    "dispatcher/sender.py",
    "dispatcher/poller.py",
    "dispatcher/worker.py",
    "dispatcher/reconcile.py",
    "dispatcher/responses.py",
    "dispatcher/sessions.py",
    "dispatcher/smpp.py",
    "dispatcher/transport.py",
]


@pytest.mark.parametrize("path", GENERIC)
def test_names_no_provider(path: str) -> None:
    lines = (ROOT / path).read_text(encoding="utf-8").splitlines()
    named = [f"{n}: {line.strip()}" for n, line in enumerate(lines, 1) if NAMES.search(line)]
    assert named == [], f"{path} names a provider:\n" + "\n".join(named)


def test_the_webhooks_package_is_checked() -> None:
    assert "dispatcher/webhooks/app.py" in GENERIC
    assert NAMES.search("Cloud Aten's") and NAMES.search("one_mobile_dlr")
    assert NAMES.search("CloudSMS") and NAMES.search("OneMobileCodec")
