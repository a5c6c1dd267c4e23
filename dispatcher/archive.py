"""Archived campaigns: one gzip-compressed NDJSON file each, written atomically, read back.

Where: ``<archive_dir>/<prefix folder>/<campaign id>.ndjson.gz``. The prefix folder is the
deployment's key prefix percent-encoded, dots included (``dsp%3A`` for ``dsp:``,
``(empty)`` for none): campaign ids are unique within one Redis only, so two deployments
sharing an archive_dir never mix their campaigns. Files and folders are created private
(0600, 0700): they hold phone numbers.

Schema 1, one JSON object a line:

* line 1, the header: ``schema`` (1), ``format`` (``"dispatcher.archive"``), ``campaign``
  (its id), ``prefix``, ``recipients`` (how many lines follow), ``status`` (the
  CampaignStatus fields as ``status`` answered when archived: state, total, counts, finals,
  parked, duplicates, reason, created_at, with ``archived_at`` set and ``share`` null) and
  ``meta`` (the campaign as enqueued and as it ended: provider, account, kind, lane, text,
  signature, name, options as an object, idempotency_key, retention_days, state, reason, the
  counters, created_at, done_at and archived_at in Unix ms, numbers as numbers);
* then one line per recipient in index order, exactly as ``results`` gives it
  (``Result.as_dict()``): index, number, status, message_id, error_code, error, segments,
  price, sent_at, batch_id, raw_status, status_at.

Later versions may add fields without a new schema number (readers ignore fields they do
not know); a change that breaks readers raises it, and a reader refuses a schema it does not
know rather than misread it.

A file is written as ``.<id>.<pid>-<random>.tmp`` in the same folder, flushed and fsynced,
checked (every recipient written, the campaign unchanged meanwhile: the caller's check),
then renamed over the final name and the folder fsynced: a reader finds the whole file or
none. A temp file a crash left behind is removed by the next write for that campaign once
it is an hour old (a younger one may be another process's write in progress).
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import os
import re
import secrets
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import asdict, fields
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import orjson

from dispatcher.errors import DispatcherError
from dispatcher.model import CampaignStatus, Result

SCHEMA = 1
FORMAT = "dispatcher.archive"
SUFFIX = ".ndjson.gz"
#: Lines read or written per hop to a thread: file work never blocks the event loop long.
LINES_PER_IO = 1000
STALE_TEMP_S = 3600
#: Meta fields that are text whatever they look like (a name may be "123").
TEXT_FIELDS = frozenset({
    "provider", "account", "text", "signature", "name", "idempotency_key", "state", "kind",
    "lane", "on_unknown", "reason",
})  # fmt: skip
_SAFE_ID = re.compile(r"[A-Za-z0-9_-]{1,128}\Z")
_STATUS_FIELDS = tuple(f.name for f in fields(CampaignStatus))


class ArchiveError(DispatcherError):
    """An archive file that cannot be written or read; the message names the campaign."""


def prefix_folder(prefix: str) -> str:
    """The folder of a key prefix: percent-encoded, dots too (no ``..``, no hidden folder),
    so no two prefixes share one."""
    return quote(prefix, safe="").replace(".", "%2E") or "(empty)"


def archived_meta(meta: Mapping[str, str]) -> dict[str, Any]:
    """The meta hash as the header keeps it: options as an object, numbers as numbers."""
    out: dict[str, Any] = {}
    for name, value in sorted(meta.items()):
        if name == "options":
            out[name] = orjson.loads(value) if value else {}
        elif name in TEXT_FIELDS or not re.fullmatch(r"-?\d{1,18}", value):
            out[name] = value
        else:
            out[name] = int(value)
    return out


def header_for(
    cid: str, prefix: str, status: CampaignStatus, meta: dict[str, Any]
) -> dict[str, Any]:
    """Line 1 of an archive (see the module docstring)."""
    return {
        "schema": SCHEMA,
        "format": FORMAT,
        "campaign": cid,
        "prefix": prefix,
        "recipients": status.total,
        "status": asdict(status),
        "meta": meta,
    }


def status_from(header: Mapping[str, Any]) -> CampaignStatus:
    """The CampaignStatus an archive header holds."""
    given = header["status"]
    return CampaignStatus(**{name: given[name] for name in _STATUS_FIELDS if name in given})


class _Writer:
    """One archive being written to its temp file (blocking calls: run in a thread)."""

    def __init__(self, folder: Path, cid: str) -> None:
        self.final = folder / f"{cid}{SUFFIX}"
        self.temp = folder / f".{cid}.{os.getpid()}-{secrets.token_hex(4)}.tmp"
        fd = os.open(self.temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self.raw: IO[bytes] = os.fdopen(fd, "wb")
        self.gz = gzip.GzipFile(fileobj=self.raw, mode="wb", compresslevel=6)
        self.lines = 0

    def write(self, lines: list[bytes]) -> None:
        self.gz.write(b"".join(lines))
        self.lines += len(lines)

    def commit(self) -> None:
        self.gz.close()
        self.raw.flush()
        os.fsync(self.raw.fileno())
        self.raw.close()
        os.replace(self.temp, self.final)
        fd = os.open(self.final.parent, os.O_RDONLY)
        try:
            os.fsync(fd)  # the rename itself survives a power cut
        finally:
            os.close(fd)

    def abort(self) -> None:
        for closing in (self.gz.close, self.raw.close):
            with contextlib.suppress(OSError):
                closing()
        self.temp.unlink(missing_ok=True)


def _open_lines(path: Path) -> gzip.GzipFile | None:
    try:
        return gzip.open(path, "rb")
    except FileNotFoundError:
        return None


def _read_lines(fh: gzip.GzipFile, most: int) -> list[bytes]:
    out = []
    for _ in range(most):
        line = fh.readline()
        if not line:
            break
        out.append(line)
    return out


def _read_header(path: Path) -> dict[str, Any] | None:
    fh = _open_lines(path)
    if fh is None:
        return None
    with fh:
        line = fh.readline()
    header = orjson.loads(line)
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ValueError("not a dispatcher archive")
    return header


class Archive:
    """The archive files of one deployment (one key prefix) under ``root``."""

    def __init__(self, root: str | os.PathLike[str], prefix: str) -> None:
        self.root = Path(root)
        self.prefix = prefix
        self.folder = self.root / prefix_folder(prefix)

    def path(self, cid: str) -> Path:
        if not _SAFE_ID.match(cid):
            raise ArchiveError(f"campaign {cid!r}: not an id an archive file can have")
        return self.folder / f"{cid}{SUFFIX}"

    def exists(self, cid: str) -> bool:
        return bool(_SAFE_ID.match(cid)) and self.path(cid).is_file()

    async def header(self, cid: str) -> dict[str, Any] | None:
        """The header of the campaign's archive; None if it has none."""
        if not _SAFE_ID.match(cid):
            return None
        path = self.path(cid)
        try:
            header = await asyncio.to_thread(_read_header, path)
        except (OSError, EOFError, ValueError) as exc:
            raise ArchiveError(f"campaign {cid}: cannot read its archive {path}: {exc}") from None
        if header is not None and header.get("schema") != SCHEMA:
            raise ArchiveError(
                f"campaign {cid}: archive {path} has schema {header.get('schema')!r}; this "
                f"dispatcher reads schema {SCHEMA}"
            )
        return header

    async def status(self, cid: str) -> CampaignStatus | None:
        header = await self.header(cid)
        return None if header is None else status_from(header)

    async def results(self, cid: str, *, after: int = -1) -> AsyncIterator[Result]:
        """The archived results in index order (after ``after``); none if no archive."""
        if not _SAFE_ID.match(cid):
            return
        path = self.path(cid)
        fh = await asyncio.to_thread(_open_lines, path)
        if fh is None:
            return
        try:
            first = True
            while True:
                lines = await asyncio.to_thread(_read_lines, fh, LINES_PER_IO)
                if not lines:
                    break
                for line in lines[1:] if first else lines:
                    result = Result.from_dict(orjson.loads(line))
                    if result.index > after:
                        yield result
                first = False
        except (OSError, EOFError, ValueError) as exc:
            raise ArchiveError(f"campaign {cid}: cannot read its archive {path}: {exc}") from None
        finally:
            await asyncio.to_thread(fh.close)

    async def write(
        self,
        cid: str,
        header: dict[str, Any],
        results: AsyncIterable[Result],
        check: Callable[[], Awaitable[None]],
    ) -> Path:
        """Write the archive atomically: ``header``, then ``results``; ``check()`` runs once
        everything is read and before the rename, and raises to abandon the file (the
        campaign changed or vanished meanwhile). Returns the file's path."""
        self.path(cid)  # refuses an id that is no file name
        try:
            writer = await asyncio.to_thread(self._start, cid)
        except OSError as exc:
            raise ArchiveError(f"campaign {cid}: cannot write in {self.folder}: {exc}") from None

        async def on_file(step: Callable[..., None], *args: Any) -> None:
            """A file step; its errors name the file (a Redis error passes as it is)."""
            try:
                await asyncio.to_thread(step, *args)
            except OSError as exc:
                raise ArchiveError(f"campaign {cid}: cannot write {writer.final}: {exc}") from None

        try:
            batch = [orjson.dumps(header) + b"\n"]
            async for result in results:
                batch.append(orjson.dumps(result.as_dict()) + b"\n")
                if len(batch) >= LINES_PER_IO:
                    await on_file(writer.write, batch)
                    batch = []
            await on_file(writer.write, batch)
            if writer.lines != header["recipients"] + 1:
                raise ArchiveError(
                    f"campaign {cid}: {writer.lines - 1} results read, {header['recipients']} "
                    "expected; not archived"
                )
            await check()
            await on_file(writer.commit)
        except BaseException:
            await asyncio.to_thread(writer.abort)
            raise
        return writer.final

    def _start(self, cid: str) -> _Writer:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._remove_temps(cid, STALE_TEMP_S)
        return _Writer(self.folder, cid)

    def remove(self, cid: str) -> bool:
        """Delete the campaign's archive (and any temp file of it); True if there was one."""
        path = self.path(cid)
        self._remove_temps(cid, 0)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        return True

    def _remove_temps(self, cid: str, older_than_s: float) -> None:
        now = time.time()
        for temp in self.folder.glob(f".{cid}.*.tmp"):
            try:
                if now - temp.stat().st_mtime >= older_than_s:
                    temp.unlink(missing_ok=True)
            except FileNotFoundError:
                pass
