"""Which settings file and which Redis a command uses, said with ``-v``; the warnings."""

from __future__ import annotations

import ipaddress
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

from dispatcher.config import DEFAULT_CONFIG, Settings, load_settings
from dispatcher.embedded import data_dir_from_env
from dispatcher.runtime import redact_url, say

#: The data folder commands used before the per-user one: a hint where old campaigns are.
OLD_DATA_DIR = Path(".dispatcher")


def config_source(given: str | None) -> tuple[Path | None, str]:
    """The settings file ``load_settings`` reads for ``given``, and where that choice came
    from (the same order: ``--config``, ``$DISPATCHER_CONFIG``, ``./config/dispatcher.toml``)."""
    if given:
        return Path(given), "--config"
    env = os.environ.get("DISPATCHER_CONFIG")
    if env:
        return Path(env), "DISPATCHER_CONFIG"
    if DEFAULT_CONFIG.exists():
        return DEFAULT_CONFIG, f"./{DEFAULT_CONFIG}"
    return None, f"no --config, DISPATCHER_CONFIG unset, no ./{DEFAULT_CONFIG} in {Path.cwd()}"


def settings_for(given: str | None) -> Settings:
    """Load the settings as every command does; say which file (``-v``), and warn in one
    line when there is none and the built-in providers would talk to real services."""
    path, source = config_source(given)
    if path is not None:
        say(f"config: {path.absolute()} ({source})")
    else:
        say(f"config: none, built-in settings ({source})")
    settings = load_settings(path)
    if path is None:
        real = sorted(name for name, p in settings.providers.items() if not is_loopback(p.base_url))
        if real:
            print(
                f"warning: no settings file ({source}): the built-in providers "
                f"{', '.join(real)} point at their real APIs",
                file=sys.stderr,
            )
    return settings


def is_loopback(url: str) -> bool:
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def redis_description() -> str:
    """Where Redis would come from, without starting anything (``dispatcher config``)."""
    url = os.environ.get("REDIS_URL")
    if url:
        return f"{redact_url(url)} (REDIS_URL)"
    return f"embedded valkey-server, data in {data_dir_from_env()} (REDIS_URL unset)"


def warn_about_old_data_dir() -> None:
    """Campaigns enqueued before the per-user folder stay in ``./.dispatcher``: say so."""
    if os.environ.get("REDIS_URL") or os.environ.get("DISPATCHER_DATA_DIR"):
        return
    old = OLD_DATA_DIR.absolute()
    if (old / "appendonlydir").is_dir() and old != data_dir_from_env():
        print(
            f"warning: {old} holds an older embedded Redis; this command uses "
            f"{data_dir_from_env()} (set DISPATCHER_DATA_DIR={old} to use the old one)",
            file=sys.stderr,
        )
