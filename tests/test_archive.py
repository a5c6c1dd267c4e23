"""Archive files on their own (no Redis): the round trip, the atomic write, the schema."""

from __future__ import annotations

import gzip
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from dispatcher.archive import (
    FORMAT,
    SCHEMA,
    STALE_TEMP_S,
    Archive,
    ArchiveError,
    archived_meta,
    header_for,
    prefix_folder,
)
from dispatcher.model import CampaignStatus, Result, Status

CID = "c0ffee0123456789"
RESULTS = [
    Result(0, "+447911000000", Status.DELIVERED, "m0", None, None, 1, 0.0087, 1_700_000_000_000,
           None, "DELIVRD", 1_700_000_001_000),
    Result(1, "07911", Status.INVALID, error_code="INVALID_NUMBER", error="too short"),
    Result(2, "+447911000002", Status.UNDELIVERED, "m2", "E7", "absent", 2, None, 5, "B1",
           "UNDELIV", 6),
]  # fmt: skip
STATUS = CampaignStatus(
    id=CID, provider="cloudaten", account="default", state="done", total=3,
    counts={"accepted": 2, "invalid": 1}, created_at=1_699_999_999_000, duplicates=1,
    finals={"delivered": 1, "undelivered": 1, "invalid": 1}, archived_at=1_700_000_002_000,
)  # fmt: skip
META = {
    "provider": "cloudaten", "account": "default", "text": "Hi <+B+>", "name": "123",
    "options": '{"signature":"ACME"}', "total": "3", "created_at": "1699999999000",
    "done_at": "1700000001500", "archived_at": "1700000002000", "state": "done",
    "idempotency_key": "", "u:timeout": "0",
}  # fmt: skip


async def each(items: list[Result]) -> AsyncIterator[Result]:
    for r in items:
        yield r


async def nothing() -> None:
    return None


def header() -> dict[str, object]:
    return header_for(CID, "dsp:", STATUS, archived_meta(META))


async def test_round_trip(tmp_path: Path) -> None:
    archive = Archive(tmp_path, "dsp:")
    path = await archive.write(CID, header(), each(RESULTS), nothing)
    assert path == tmp_path / "dsp%3A" / f"{CID}.ndjson.gz" == archive.path(CID)
    assert archive.exists(CID)
    assert await archive.status(CID) == STATUS
    assert [r async for r in archive.results(CID)] == RESULTS
    assert [r.index async for r in archive.results(CID, after=0)] == [1, 2]
    assert [r async for r in archive.results(CID, after=2)] == []
    assert oct(path.stat().st_mode & 0o777) == "0o600"  # phone numbers: private


async def test_the_schema_header(tmp_path: Path) -> None:
    path = await Archive(tmp_path, "dsp:").write(CID, header(), each(RESULTS), nothing)
    with gzip.open(path, "rb") as fh:
        lines = fh.read().splitlines()
    first = orjson.loads(lines[0])
    assert first["schema"] == SCHEMA == 1 and first["format"] == FORMAT
    assert first["campaign"] == CID and first["prefix"] == "dsp:" and first["recipients"] == 3
    assert first["status"]["state"] == "done" and first["status"]["archived_at"] == 1700000002000
    meta = first["meta"]
    assert meta["options"] == {"signature": "ACME"}  # an object, not a JSON string
    assert meta["total"] == 3 and meta["done_at"] == 1700000001500  # numbers as numbers
    assert meta["name"] == "123" and meta["text"] == "Hi <+B+>"  # text stays text
    # Then one line per recipient, exactly Result.as_dict().
    assert [orjson.loads(line) for line in lines[1:]] == [r.as_dict() for r in RESULTS]


async def test_a_failed_check_or_read_leaves_no_file(tmp_path: Path) -> None:
    archive = Archive(tmp_path, "dsp:")

    async def changed() -> None:
        raise ArchiveError("changed meanwhile")

    with pytest.raises(ArchiveError, match="changed meanwhile"):
        await archive.write(CID, header(), each(RESULTS), changed)
    with pytest.raises(ArchiveError, match="2 results read, 3 expected"):
        await archive.write(CID, header(), each(RESULTS[:2]), nothing)

    async def broken() -> AsyncIterator[Result]:
        yield RESULTS[0]
        raise ConnectionError("Redis went away")

    with pytest.raises(ConnectionError):
        await archive.write(CID, header(), broken(), nothing)
    assert not archive.exists(CID)
    assert list(archive.folder.iterdir()) == []  # no temp file left behind


async def test_a_failed_rewrite_keeps_the_old_file_whole(tmp_path: Path) -> None:
    archive = Archive(tmp_path, "dsp:")
    path = await archive.write(CID, header(), each(RESULTS), nothing)
    before = path.read_bytes()
    with pytest.raises(ArchiveError):
        await archive.write(CID, header(), each(RESULTS[:1]), nothing)
    assert path.read_bytes() == before
    assert [p.name for p in archive.folder.iterdir()] == [path.name]


async def test_stale_temp_files_are_removed_young_ones_kept(tmp_path: Path) -> None:
    archive = Archive(tmp_path, "dsp:")
    archive.folder.mkdir(parents=True)
    old = archive.folder / f".{CID}.1-dead.tmp"
    young = archive.folder / f".{CID}.2-busy.tmp"
    other = archive.folder / ".another.1-dead.tmp"
    for temp in (old, young, other):
        temp.write_bytes(b"partial")
    past = time.time() - STALE_TEMP_S - 10
    os.utime(old, (past, past))
    os.utime(other, (past, past))
    await archive.write(CID, header(), each(RESULTS), nothing)
    assert not old.exists() and young.exists() and other.exists()
    assert archive.remove(CID) and not young.exists() and not archive.exists(CID)
    assert not archive.remove(CID)


def test_each_prefix_has_its_own_folder() -> None:
    names = {prefix_folder(p) for p in ("dsp:", "dsp_", "dsp%3A", "", "a/b", "..")}
    assert len(names) == 6
    assert prefix_folder("dsp:") == "dsp%3A" and prefix_folder("") == "(empty)"
    assert all("/" not in n and n not in (".", "..") for n in names)


async def test_ids_that_are_no_file_name(tmp_path: Path) -> None:
    archive = Archive(tmp_path, "dsp:")
    for bad in ("../etc/passwd", "", ".hidden", "a b"):
        assert not archive.exists(bad)
        assert await archive.status(bad) is None
        assert [r async for r in archive.results(bad)] == []
        with pytest.raises(ArchiveError, match="not an id"):
            archive.path(bad)
    assert await archive.status(CID) is None  # none written yet


async def test_an_unknown_schema_or_a_damaged_file_is_refused(tmp_path: Path) -> None:
    archive = Archive(tmp_path, "dsp:")
    archive.folder.mkdir(parents=True)
    with gzip.open(archive.path(CID), "wb") as fh:
        fh.write(orjson.dumps({**header(), "schema": 2}) + b"\n")
    with pytest.raises(ArchiveError, match=f"campaign {CID}: archive .* has schema 2"):
        await archive.status(CID)
    path = await archive.write(CID, header(), each(RESULTS), nothing)
    path.write_bytes(path.read_bytes()[:-12])  # cut short
    with pytest.raises(ArchiveError, match=f"campaign {CID}: cannot read"):
        [r async for r in archive.results(CID)]
