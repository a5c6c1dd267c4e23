"""The errors users catch share one base, and keep the built-in base they had."""

from __future__ import annotations

import pytest

from dispatcher import DispatcherError
from dispatcher.client import CampaignNotFound, NothingToSend
from dispatcher.config import ConfigError
from dispatcher.embedded import EmbeddedRedisError
from dispatcher.health import NotReady
from dispatcher.model import CampaignError
from dispatcher.recipients_file import RecipientsFileError
from dispatcher.runtime import RedisUnreachable, RedisUrlError
from dispatcher.transport import TransportError


@pytest.mark.parametrize(
    ("error", "builtin"),
    [
        (CampaignError("text", "must not be empty"), ValueError),
        (RecipientsFileError("n.csv", 3, "3 columns"), ValueError),
        (NothingToSend("recipients", "none is valid"), ValueError),
        (CampaignNotFound("nope"), KeyError),
        (ConfigError("prefix: must be a string"), ValueError),
        (RedisUrlError("REDIS_URL: not a URL"), ValueError),
        (RedisUnreachable("redis://:secret@127.0.0.1:9", "refused"), RuntimeError),
        (EmbeddedRedisError("no valkey-server"), RuntimeError),
        (NotReady("no group"), RuntimeError),
        (TransportError("timeout", "no answer"), Exception),
    ],
)
def test_one_base_and_the_old_one(error: Exception, builtin: type[Exception]) -> None:
    assert isinstance(error, DispatcherError) and isinstance(error, builtin)
    assert "secret" not in str(error)


def test_campaign_not_found_still_says_which() -> None:
    assert str(CampaignNotFound("nope")) == "no campaign 'nope'"
