"""How dispatcher logs: the text and JSON line formats, and one line per campaign event.

Campaign events (enqueued, started, paused, resumed, sent, done, cancelled) and takeovers go
to the logger ``dispatcher.events`` through :func:`event`, from the one process whose action
made the transition (the Redis script that made it says so), so each is logged once however
many processes run. A line reads ``campaign <id> <event>: <detail> key=value …``; the same
context rides on the record (``extra``) for ``--log-format json``, one object a line, which
log shippers parse without a regular expression.

No secret reaches a line: events carry ids, names, counts and reasons, never credentials; a
filter with a ``redact(text)`` method on the handler (the webhooks process's, redact.py)
scrubs the structured fields as well as the message; and secrets handed to :func:`protect`
(the providers' API keys, as a worker first uses them) are scrubbed from every line.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import IO, Any

import orjson

#: Where campaign events are logged: one logger, so that they can be routed on their own.
EVENTS = logging.getLogger("dispatcher.events")
FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s"
#: A secret shorter than this is not scrubbed: it would mangle ordinary words.
MIN_SECRET = 8

#: The attributes every LogRecord has: anything else on a record came with ``extra=``.
_BARE = logging.LogRecord("", 0, "", 0, "", None, None)
_STANDARD = frozenset(_BARE.__dict__) | {"message", "asctime", "taskName"}
_secrets: set[str] = set()


def log_format(value: str) -> str:
    """``--log-format`` (and ``$DISPATCHER_LOG_FORMAT``, its default): text or json."""
    chosen = value.strip().lower()
    if chosen not in FORMATS:
        raise argparse.ArgumentTypeError(
            f"{value!r}: expected text or json (from --log-format or $DISPATCHER_LOG_FORMAT)"
        )
    return chosen


def protect(secret: str) -> None:
    """Scrub ``secret`` from every line this process logs from now on."""
    if len(secret) >= MIN_SECRET:
        _secrets.add(secret)


def extras(record: logging.LogRecord) -> dict[str, Any]:
    """What the record carries beyond the standard attributes (``extra=``)."""
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD}


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (ISO 8601 UTC), level, logger, message, pid, the
    record's ``extra`` fields, and the exception or stack as text."""

    def format(self, record: logging.LogRecord) -> str:
        at = datetime.fromtimestamp(record.created, UTC)
        out: dict[str, Any] = {
            "time": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        for key, value in extras(record).items():
            out.setdefault(key, value)
        # A redacting filter may have formatted the exception already (exc_text, scrubbed):
        # that text wins over formatting exc_info again.
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exception"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(out, default=str).decode()


def _scrub_value(value: Any, redact: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {k: _scrub_value(v, redact) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub_value(v, redact) for v in value]
    return value


def _forget_secrets(text: str) -> str:
    for secret in _secrets:
        text = text.replace(secret, "<redacted>")
    return text


class Handler(logging.StreamHandler[IO[str]]):
    """A stream handler that also runs its filters' ``redact`` over the structured fields,
    which a filter rewriting only the message would miss in a JSON line, and scrubs the
    secrets given to :func:`protect` from the whole line."""

    def format(self, record: logging.LogRecord) -> str:
        for f in self.filters:
            redact = getattr(f, "redact", None)
            if callable(redact):
                for key, value in extras(record).items():
                    setattr(record, key, _scrub_value(value, redact))
        text = super().format(record)
        return _forget_secrets(text) if _secrets else text


def setup(level: str = "INFO", fmt: str = "text", stream: IO[str] | None = None) -> None:
    """Log to stderr at ``level`` in ``fmt`` (text or json); once per process, like
    ``logging.basicConfig`` (a process whose root logger has handlers keeps them)."""
    handler = Handler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), handlers=[handler])


def _quote(value: object) -> str:
    text = str(value)
    if not text or any(c.isspace() or c in '"=' for c in text):
        return orjson.dumps(text).decode()
    return text


def tally(counts: Mapping[str, int]) -> str:
    """``19890 accepted, 110 failed``: the counts, largest first, none that is zero."""
    items = sorted(((n, s) for s, n in counts.items() if n), key=lambda x: (-x[0], x[1]))
    return ", ".join(f"{n} {s}" for n, s in items) or "none"


def event(
    name: str,
    campaign: str,
    detail: str = "",
    *,
    level: int = logging.INFO,
    provider: str | None = None,
    account: str | None = None,
    counts: Mapping[str, int] | None = None,
    reason: str | None = None,
    **context: str | int,
) -> None:
    """Log one campaign event: ``campaign <id> <name>: <detail> provider=… account=… …``.

    ``context`` (chunk, lane, kind, …) is appended as key=value; ``counts`` and ``reason``
    are told in ``detail`` by the caller and ride as fields for JSON.
    """
    fields: dict[str, Any] = {"event": name, "campaign": campaign}
    pairs = {"provider": provider, "account": account, **context}
    fields.update({k: v for k, v in pairs.items() if v is not None})
    if counts is not None:
        fields["counts"] = dict(counts)
    if reason is not None:
        fields["reason"] = reason
    text = f"campaign {campaign} {name}" + (f": {detail}" if detail else "")
    tail = " ".join(f"{k}={_quote(v)}" for k, v in pairs.items() if v is not None)
    EVENTS.log(level, "%s", f"{text} {tail}" if tail else text, extra=fields)
