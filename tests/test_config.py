"""Settings files: defaults, validation naming the setting, and secrets kept out of sight."""

from __future__ import annotations

from pathlib import Path

import pytest

from dispatcher.config import (
    ConfigError,
    Secret,
    load_settings,
    parse_settings,
    parse_with_codecs,
    with_overrides,
)


def test_builtin_defaults_without_a_file() -> None:
    s = parse_settings({})
    assert s.prefix == "dsp:"
    assert s.provider("cloudaten").base_url == "https://api.cloudaten.com"
    assert s.provider("cloudaten").account("default").api_key_env == "CLOUDATEN_API_KEY"


def test_repo_config_file_loads() -> None:
    s = load_settings(Path(__file__).resolve().parent.parent / "config" / "dispatcher.toml")
    assert "cloudaten" in s.providers


def test_file_overrides_and_worker_overrides(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text(
        'prefix = "p:"\n[worker]\nlease_seconds = 5\n'
        '[providers.cloudaten]\nbase_url = "http://127.0.0.1:1/cloudaten"\nrate_per_second = 7\n'
    )
    s = with_overrides(load_settings(f), chunks_in_flight=3, lease_seconds=None)
    assert (s.prefix, s.worker.lease_seconds, s.worker.chunks_in_flight) == ("p:", 5, 3)
    assert s.provider("cloudaten").rate_per_second == 7


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"prefx": "x"}, "prefx: unknown setting"),
        ({"worker": {"lease_seconds": "long"}}, "worker.lease_seconds: expected"),
        ({"worker": {"chunks_in_flight": 0}}, "worker.chunks_in_flight: must be positive"),
        ({"providers": {"cloudaten": {"rate": 5}}}, "providers.cloudaten.rate: unknown setting"),
        ({"providers": {"nosuch": {"base_url": "http://x"}}}, "providers.nosuch: unknown provider"),
        (
            {"providers": {"cloudaten": {"accounts": {"a": {"key": "x"}}}}},
            "providers.cloudaten.accounts.a.key: unknown setting",
        ),
        # Rates that cannot work are refused, naming the setting (0.2/s works).
        ({"providers": {"cloudaten": {"rate_per_second": 0}}}, "rate_per_second: must be positive"),
        ({"providers": {"ycloud": {"rate_per_second": -1}}}, "rate_per_second: must be positive"),
        (
            {"providers": {"cloudaten": {"rate_per_second": 0.0001}}},
            "providers.cloudaten.rate_per_second: at least 0.001",
        ),
        ({"providers": {"cloudsms": {"rate_headroom": 1}}}, "rate_headroom: must be below 1"),
        ({"providers": {"cloudsms": {"on_unknown": "retry"}}}, "on_unknown: must be resend or"),
    ],
)
def test_errors_name_the_setting(data: dict[str, object], words: str) -> None:
    with pytest.raises(ConfigError, match=words.replace(".", r"\.")):
        parse_with_codecs(data)


def test_bad_toml_is_reported(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text("prefix = \n")
    with pytest.raises(ConfigError, match=r"c\.toml"):
        load_settings(f)


def test_secrets_never_show(monkeypatch: pytest.MonkeyPatch) -> None:
    s = parse_settings(
        {
            "providers": {
                "cloudaten": {"accounts": {"a": {"api_key": "s3cret"}, "b": {"api_key_env": "K_B"}}}
            }
        }
    )
    acct = s.provider("cloudaten").account("a")
    assert "s3cret" not in repr(acct) and "s3cret" not in str(acct.api_key)
    assert acct.key("cloudaten") == "s3cret"
    assert repr(Secret("x")) == "Secret(***)"
    monkeypatch.delenv("K_B", raising=False)
    with pytest.raises(ConfigError, match="K_B is not set"):
        s.provider("cloudaten").account("b").key("cloudaten")
    monkeypatch.setenv("K_B", "v")
    assert s.provider("cloudaten").account("b").key("cloudaten") == "v"
    with pytest.raises(ConfigError, match=r"accounts\.zz: not configured"):
        s.provider("cloudaten").account("zz")


def test_slow_rates_and_the_unknown_fate_defaults() -> None:
    s = parse_with_codecs({"providers": {"cloudaten": {"rate_per_second": 0.2}}})
    assert s.provider("cloudaten").rate_per_second == 0.2
    assert s.provider("cloudaten").on_unknown == "resend"
    # Smsclouds cannot say what a cut-off request reached: held for an operator at once.
    smsclouds = s.provider("smsclouds")
    assert (smsclouds.on_unknown, smsclouds.unknown_wait_seconds) == ("hold", 0)


SMPP_ACCOUNT = {
    "transport": "smpp",
    "smpp_host": "127.0.0.1",
    "smpp_port": 2775,
    "system_id": "USER_ID",
    "api_key_env": "SMPP_PASSWORD",
    "sender_id": "MASMSJ",
}


def with_smpp(**account: object) -> dict[str, object]:
    return {"providers": {"smsclouds": {"accounts": {"smpp": {**SMPP_ACCOUNT, **account}}}}}


def test_an_smpp_account_has_its_session_settings_and_the_smpp_codecs_options() -> None:
    acct = parse_with_codecs(with_smpp(window=4)).provider("smsclouds").account("smpp")
    assert acct.transport == "smpp" and acct.options == {"sender_id": "MASMSJ"}
    assert acct.smpp is not None
    assert (acct.smpp.host, acct.smpp.port, acct.smpp.system_id) == ("127.0.0.1", 2775, "USER_ID")
    assert (acct.smpp.bind, acct.smpp.window) == ("transceiver", 4)


@pytest.mark.parametrize(
    ("account", "message"),
    [
        ({"smpp_port": None}, "smpp.smpp_port: is required"),
        ({"smpp_port": 70000}, "smpp.smpp_port: expected a port number"),
        ({"system_id": "x" * 16}, "smpp.system_id: at most 15 characters"),
        ({"bind": "receiver"}, "smpp.bind: must be one of transceiver, transmitter"),
        ({"window": 0}, "smpp.window: expected a positive integer"),
        ({"route": 77}, "smpp.route: unknown setting"),  # an HTTP option, not SMPP's
        ({"transport": "carrier-pigeon"}, "smpp.transport: must be one of http, smpp"),
        ({"on_unknown": "shrug"}, "smpp.on_unknown: must be resend or hold"),
    ],
)
def test_smpp_settings_that_cannot_work_name_the_setting(
    account: dict[str, object], message: str
) -> None:
    table = {**SMPP_ACCOUNT, **account}
    data = {"providers": {"smsclouds": {"accounts": {"smpp": {
        k: v for k, v in table.items() if v is not None}}}}}  # fmt: skip
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        parse_with_codecs(data)


def test_smpp_settings_on_a_provider_without_smpp_are_refused() -> None:
    data = {"providers": {"cloudaten": {"accounts": {"default": SMPP_ACCOUNT}}}}
    with pytest.raises(ConfigError, match="cloudaten has no smpp transport"):
        parse_with_codecs(data)
