"""The Redis Cluster plumbing against a real local 3-primary cluster of this module's own
(tests/cluster.py), whatever ``DISPATCHER_TEST_CLUSTER`` says: the cluster forms, the
URLs name it, and redis-py's cluster client does what dispatcher's scripts and
transactions will need once their keys share a hash tag, and refuses what they must not do.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import cast

import pytest
from redis import Redis as SyncRedis
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import (
    ClusterCrossSlotError,
    CrossSlotTransactionError,
    RedisClusterException,
)

from dispatcher.client import Client
from dispatcher.embedded import CLIENT_NAME, free_port
from dispatcher.keys import CLUSTER_PARTITIONS, Keys
from dispatcher.model import Campaign
from dispatcher.msgindex import MessageIndex
from dispatcher.runtime import (
    RedisUnreachable,
    RedisUrlError,
    checked_url,
    connect,
    ensure_reachable,
    is_cluster_url,
    plain_url,
    probe_client,
    redact_url,
)
from dispatcher.store import as_str
from tests.cluster import SLOTS, LocalCluster
from tests.conftest import make_settings

pytestmark = pytest.mark.cluster

#: Sets KEYS[1] to ARGV[1] and reads KEYS[2]: two declared keys, as dispatcher's scripts have.
SET_THEN_GET = "redis.call('SET', KEYS[1], ARGV[1]); return redis.call('GET', KEYS[2])"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with LocalCluster(tmp_path_factory.mktemp("own-cluster")) as started:
        yield started


@pytest.fixture
async def client(cluster: LocalCluster) -> AsyncIterator[RedisCluster]:
    redis: object = connect(cluster.url)  # typed Redis; a RedisCluster in fact
    assert isinstance(redis, RedisCluster)
    await redis.initialize()  # the slot map, for get_node_from_key
    yield redis
    await redis.aclose()


def two_slots(client: RedisCluster, prefix: str) -> tuple[str, str]:
    """Two keys (no hash tag) in different slots."""
    first = f"{prefix}:0"
    for i in range(1, 100):
        other = f"{prefix}:{i}"
        if client.keyslot(other) != client.keyslot(first):
            return first, other
    raise AssertionError("no second slot among 100 keys")


@pytest.mark.parametrize(
    ("url", "cluster", "plain"),
    [
        ("redis+cluster://127.0.0.1:7000", True, "redis://127.0.0.1:7000"),
        ("rediss+cluster://u:pw@db:7000/0", True, "rediss://u:pw@db:7000/0"),
        ("REDIS+CLUSTER://db:7000", True, "REDIS://db:7000"),
        ("redis://db:6379/0?name=a+cluster", False, "redis://db:6379/0?name=a+cluster"),
        ("rediss://db:6379/0", False, "rediss://db:6379/0"),
        ("unix:///run/redis.sock", False, "unix:///run/redis.sock"),
        ("db:6379", False, "db:6379"),
    ],
)
def test_cluster_urls_are_told_apart_and_made_plain(url: str, cluster: bool, plain: str) -> None:
    assert is_cluster_url(url) is cluster
    assert plain_url(url) == plain


def test_cluster_schemes_are_accepted_and_printed_without_the_password() -> None:
    for url in ("redis+cluster://db:7000", "rediss+cluster://:pw@db:7000/0"):
        assert checked_url(url) == url
    assert redact_url("rediss+cluster://:pw@db:7000/0") == "rediss+cluster://db:7000/0"
    with pytest.raises(RedisUrlError, match=r"^REDIS_URL must start with redis://"):
        checked_url("redis+sentinel://db:26379")


def test_the_cluster_forms_with_three_primaries_owning_every_slot(cluster: LocalCluster) -> None:
    assert len(cluster.ports) == len(set(cluster.ports)) == 3
    assert cluster.url == f"redis+cluster://127.0.0.1:{cluster.ports[0]}"
    for url in cluster.node_urls:
        with SyncRedis.from_url(url) as node:
            info = node.cluster("INFO")
            assert info["cluster_state"] == "ok"
            assert info["cluster_size"] == info["cluster_known_nodes"] == "3"
            assert node.config_get("bind") == {"bind": "127.0.0.1"}  # loopback only
            owned: list[int] = []
            owners: set[int] = set()
            for first, last, (_host, port, *_rest), *replicas in node.cluster("SLOTS"):
                assert replicas == []
                owned.extend(range(first, last + 1))
                owners.add(port)
            assert sorted(owned) == list(range(SLOTS))  # each slot once, none missing
            assert owners == set(cluster.ports)


async def test_connect_spreads_keys_over_all_three_primaries(
    client: RedisCluster, cluster: LocalCluster
) -> None:
    keys: dict[int, str] = {}  # owner's port → a key it owns
    for i in range(1000):
        key = f"spread:{i}"
        node = client.get_node_from_key(key)
        assert node is not None
        keys.setdefault(int(node.port), key)
        if len(keys) == 3:
            break
    assert sorted(keys) == sorted(cluster.ports)
    try:
        for key in keys.values():
            assert await client.set(key, key)
        for port, key in keys.items():
            assert await client.get(key) == key.encode()
            # The owner holds it (a plain client of another node would get MOVED).
            with SyncRedis(host="127.0.0.1", port=port) as owner:
                assert owner.get(key) == key.encode()
                assert owner.cluster("KEYSLOT", key) == client.keyslot(key)
        assert await client.client_getname() == CLIENT_NAME
    finally:
        await client.delete(*keys.values())


async def test_probe_client_pings_a_cluster(cluster: LocalCluster) -> None:
    probe: object = probe_client(cluster.url, 2.0)  # typed Redis; a RedisCluster in fact
    assert isinstance(probe, RedisCluster)
    try:
        assert await probe.ping()
    finally:
        await probe.aclose()
    await ensure_reachable(cluster.url, 2.0)


async def test_a_script_runs_on_keys_sharing_a_hash_tag_and_never_across_slots(
    client: RedisCluster, cluster: LocalCluster
) -> None:
    script = client.register_script(SET_THEN_GET)
    tagged = ["{script-c1}:a", "{script-c1}:b"]
    await client.set(tagged[1], "there")
    assert await script(keys=tagged, args=["v"]) == b"there"
    assert await client.get(tagged[0]) == b"v"
    # NOSCRIPT made redis-py SCRIPT LOAD it, and that goes to every primary.
    for url in cluster.node_urls:
        with SyncRedis.from_url(url) as node:
            assert node.script_exists(script.sha) == [True]

    apart = two_slots(client, "script-apart")
    # redis-py refuses before sending: the keys cannot go to one node.
    with pytest.raises(RedisClusterException, match="must map to the same key slot"):
        await script(keys=list(apart), args=["v"])
    # And the server itself, asked directly, answers CROSSSLOT (redis-py's class for it).
    owner = client.get_node_from_key(apart[0])
    assert owner is not None
    plain = Redis(host=owner.host, port=int(owner.port))
    try:
        with pytest.raises(ClusterCrossSlotError, match="same slot"):  # CROSSSLOT
            await plain.evalsha(script.sha, 2, *apart, "v")
    finally:
        await plain.aclose()
    await client.delete(*tagged)


async def test_a_script_cannot_be_pipelined_on_a_cluster(client: RedisCluster) -> None:
    """redis-py blocks EVALSHA in a cluster pipeline (transaction or not): a script called
    with ``client=pipe`` must become a direct call before dispatcher runs on a cluster."""
    script = client.register_script(SET_THEN_GET)
    for transaction in (False, True):
        async with client.pipeline(transaction=transaction) as pipe:
            with pytest.raises(RedisClusterException, match="evalsha is blocked"):
                keys = ["{pipe}:a", "{pipe}:b"]
                await script(keys=keys, args=["v"], client=pipe)  # type: ignore[arg-type]


async def test_a_transaction_runs_on_keys_sharing_a_hash_tag(client: RedisCluster) -> None:
    a, b = "{tx-c1}:a", "{tx-c1}:b"
    try:
        async with client.pipeline(transaction=True) as pipe:
            pipe.set(a, "1")
            pipe.incr(b)
            assert await pipe.execute() == [True, 1]
        # WATCH, read, MULTI, write: the optimistic pattern staging.py uses.
        async with client.pipeline(transaction=True) as pipe:
            await pipe.watch(a)  # type: ignore[no-untyped-call]
            assert await pipe.get(a) == b"1"
            pipe.multi()  # type: ignore[no-untyped-call]
            pipe.set(a, "2")
            assert await pipe.execute() == [True]
        assert await client.get(a) == b"2"

        apart = two_slots(client, "tx-apart")
        async with client.pipeline(transaction=True) as pipe:
            pipe.set(apart[0], "x")
            pipe.set(apart[1], "x")
            with pytest.raises(CrossSlotTransactionError):
                await pipe.execute()
        assert await client.exists(*apart) == 0  # nothing of it ran
    finally:
        await client.delete(a, b)


async def test_an_unreachable_cluster_is_reported_as_unreachable() -> None:
    with pytest.raises(RedisUnreachable) as caught:
        await ensure_reachable(f"redis+cluster://127.0.0.1:{free_port()}", 2.0)
    assert "(connection refused)" in str(caught.value)


async def test_the_message_index_works_across_the_cluster(client: RedisCluster) -> None:
    """Its shards spread over the slots; adding, reading and forgetting touch one each."""
    index = MessageIndex(cast(Redis, client), Keys("clustertest:"))
    entries = {f"m{i}": f"camp.{i}" for i in range(300)}
    await index.add("cloudaten", entries)
    assert await index.get_many("cloudaten", ["m7", "m299", "none"]) == [
        ("camp", 7), ("camp", 299), None,
    ]  # fmt: skip
    assert await index.forget("cloudaten", "camp", list(entries)) == 300
    assert await index.get("cloudaten", "m7") is None


async def test_campaigns_spread_over_all_three_primaries(
    client: RedisCluster, cluster: LocalCluster, prefix: str
) -> None:
    """Each campaign lives in its partition's slot, all its keys together; the partitions'
    tags spread over the slots, so the campaigns spread over every primary."""
    redis = cast(Redis, client)
    settings = make_settings(prefix)
    dispatcher = Client(settings=settings, redis=redis)
    keys = dispatcher.store.keys
    assert keys.partitions == CLUSTER_PARTITIONS
    cids = [
        (await dispatcher.enqueue(Campaign("cloudaten", "hi", [f"+4479111{i:05d}"]))).id
        for i in range(24)
    ]
    primaries: dict[str, set[str]] = {}
    for cid in cids:
        node = client.get_node_from_key(keys.meta(cid))
        assert node is not None
        primaries.setdefault(node.name, set()).add(cid)
        owned = [as_str(k) async for k in client.scan_iter(match=f"{prefix}*{cid}*")]
        assert len(owned) >= 2 and len({client.keyslot(k) for k in owned}) == 1, owned
        assert (await dispatcher.status(cid)).total == 1
    assert sorted(primaries) == sorted(f"127.0.0.1:{p}" for p in cluster.ports)
    assert await redis.hget(keys.layout, "partitions") == str(CLUSTER_PARTITIONS).encode()
