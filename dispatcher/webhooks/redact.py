"""Keep the webhook secret out of every log line, aiohttp's own included.

The secret is a path segment, and aiohttp logs what it cannot parse with the offending
bytes: a request line over 8,190 bytes gets "Error handling request" at ERROR on
``aiohttp.server`` with a ``LineTooLong`` whose text holds the start of the line, secret
included. Access logs would print every path. So the webhooks process runs without access
logs, and a filter on the loggers that could see a request rewrites each record before any
handler formats it: the secret (as is, percent-encoded, or as a bytes repr), and anything
after ``hooks/`` up to the next ``/`` (a line cut short may hold part of the secret).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from urllib.parse import quote

#: Loggers a request's path can reach: aiohttp's, asyncio's (unretrieved task errors) and ours.
LOGGERS = (
    "aiohttp.access",
    "aiohttp.client",
    "aiohttp.internal",
    "aiohttp.server",
    "aiohttp.web",
    "aiohttp.websocket",
    "asyncio",
    "dispatcher.tracking",
    "dispatcher.webhooks",
)
HOOK_PATH = re.compile(r"hooks/[^/\s'\"\\]*")
REDACTED = "hooks/<redacted>"


class RedactSecret(logging.Filter):
    """Rewrites a record's message, exception text and stack without the secret."""

    def __init__(self, secret: str) -> None:
        super().__init__()
        forms = {secret, quote(secret, safe=""), repr(secret.encode())[2:-1]}
        self._forms = sorted(forms, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for form in self._forms:
            text = text.replace(form, "<redacted>")
        return HOOK_PATH.sub(REDACTED, text)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a record that cannot format: keep what it carries, as text
            message = f"{record.msg!s} {record.args!r}"
        record.msg, record.args = self.redact(message), None
        if record.exc_info:
            text = record.exc_text or logging.Formatter().formatException(record.exc_info)
            record.exc_info = None  # formatted here, redacted, and kept as exc_text
            record.exc_text = text
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


def install(
    secret: str,
    loggers: Iterable[str] = LOGGERS,
    handlers: Iterable[logging.Handler] = (),
) -> Callable[[], None]:
    """Attach the filter to ``loggers`` (records they emit) and ``handlers`` (every record
    they print); returns the function that takes it off again."""
    redact = RedactSecret(secret)
    targets: list[logging.Logger | logging.Handler] = [logging.getLogger(n) for n in loggers]
    targets += list(handlers)
    for target in targets:
        target.addFilter(redact)

    def remove() -> None:
        for target in targets:
            target.removeFilter(redact)

    return remove
