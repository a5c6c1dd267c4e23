"""The scripts staging.py runs, and the arguments of its write: each touches the keys of
one campaign (one ``{cid}`` hash slot), or one idempotency key, and no other."""

from __future__ import annotations

from typing import Any

from dispatcher import rows
from dispatcher.intake import Batch
from dispatcher.model import Rank, Status
from dispatcher.rows import pack_row

STAGING = "staging"

#: Hash fields a staging script sets per HSET: well inside Lua's unpack() limit.
GROUP = 500

WRITE = f"""
-- KEYS: meta, chunks, counts, finals, then the buckets written here (and those renewed).
-- ARGV: ttl, invalid count, then groups: key number, n, n field/value pairs to HSET there.
if redis.call('HGET', KEYS[1], 'state') ~= '{STAGING}' then return 0 end
local i = 3
while i <= #ARGV do
  local key, n = KEYS[tonumber(ARGV[i])], tonumber(ARGV[i + 1])
  redis.call('HSET', key, unpack(ARGV, i + 2, i + 1 + 2 * n))
  i = i + 2 + 2 * n
end
local invalid = tonumber(ARGV[2])
if invalid > 0 then
  redis.call('HINCRBY', KEYS[3], '{Status.INVALID.value}', invalid)
  redis.call('HINCRBY', KEYS[4], '{Status.INVALID.value}', invalid)
end
for _, key in ipairs(KEYS) do redis.call('EXPIRE', key, ARGV[1]) end
return 1
"""

#: KEYS[1]: the meta; ARGV: ttl. Step 1: mark the campaign staging, with its TTL.
STAGE = """
redis.call('HSET', KEYS[1], 'state', '{STAGING}')
return redis.call('EXPIRE', KEYS[1], ARGV[1])
""".replace("{STAGING}", STAGING)

#: KEYS: meta, chunks, then every staged key. ARGV: the invalid indexes' JSON ('' for
#: none), then the meta's field/value pairs. The commit: if the campaign is still staging,
#: write its meta (state queued) and PERSIST every staged key, at once. 0 if it was lost.
COMMIT = """
if redis.call('HGET', KEYS[1], 'state') ~= '{STAGING}' then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
if ARGV[1] ~= '' then redis.call('HSET', KEYS[2], 'invalid', ARGV[1]) end
for i = 3, #KEYS do redis.call('PERSIST', KEYS[i]) end
redis.call('PERSIST', KEYS[1])
redis.call('PERSIST', KEYS[2])
return 1
""".replace("{STAGING}", STAGING)

#: KEYS[1]: the idempotency key; ARGV: the crashed holder's cid, this cid, ttl. Take the
#: key over from an enqueue that crashed, unless someone else did first.
TAKE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
"""

#: KEYS[1]: the idempotency key; ARGV: cid, ttl. Renew it while this enqueue holds it.
EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return 0
"""

RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def write_call(
    fixed: tuple[str, ...],
    results: str,
    state: str,
    ttl: int,
    batch: Batch,
    *,
    renew: list[str],
) -> tuple[list[str], list[Any], set[int]]:
    """KEYS and ARGV of :data:`WRITE` for ``batch`` (chunks, invalid rows and ranks, in the
    buckets of rows.py), also renewing the TTL of the ``renew`` keys; and the bucket numbers
    it writes."""
    keys: list[str] = list(fixed)  # meta, chunks, counts, finals: KEYS[1…4]
    args: list[Any] = [ttl, len(batch.invalid)]
    for at in range(0, len(batch.chunks), GROUP):
        part = batch.chunks[at : at + GROUP]
        args += [2, len(part)]
        for i, blob in enumerate(part, batch.first + at):
            args += [i, blob]
    buckets: dict[str, list[Any]] = {}
    numbers: set[int] = set()
    final = int(Rank.FINAL)  # an int: redis-py would send an enum's repr
    for r in batch.invalid:
        key, field = rows.bucket(results, r.index)
        buckets.setdefault(key, []).extend((field, pack_row(r, with_number=True)))
        key, field = rows.bucket(state, r.index)
        buckets.setdefault(key, []).extend((field, final))
        numbers.add(r.index // rows.BUCKET)
    for key, pairs in buckets.items():
        keys.append(key)
        args += [len(keys), len(pairs) // 2, *pairs]  # a bucket: at most 128 pairs
    keys += [key for key in renew if key not in buckets]
    return keys, args, numbers
