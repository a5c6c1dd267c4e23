"""Voice verification codes with real processes: CLI enqueue (--kind voice), a worker, the
mock, and voice delivery reports pushed to the webhooks process."""

from __future__ import annotations

from pathlib import Path

import orjson
from redis.asyncio import Redis

from dispatcher.client import Client
from dispatcher.config import load_settings
from dispatcher.providers.cloudaten import STATUSES
from tests.e2e.conftest import System


async def test_voice_codes_with_reports(system: System, redis: Redis, tmp_path: Path) -> None:
    hooks = system.webhooks()
    system.write_config(
        webhooks={"public_url": hooks}, cloudaten={"per_number_spacing_seconds": 0.5}
    )
    await system.mock_settings(voice_spacing_s=0.5, dlr_delay_ms=100)
    people = tmp_path / "p.csv"
    rows = [(f"+{447911000000 + i % 40}", 100000 + i) for i in range(60)]  # 20 numbers twice
    people.write_text("number,field1\n" + "".join(f"{n},{code}\n" for n, code in rows))
    out = system.cli("enqueue", "--provider", "cloudaten", "--kind", "voice", "--text", "<+C+>",
                     "--option", "language=en", "--recipients", str(people), "--json")  # fmt: skip
    cid = orjson.loads(out.stdout)["id"]
    system.worker()
    client = Client(settings=load_settings(system.config), redis=redis)
    st = await client.wait(cid, 120, final=True)
    assert st.done and sum(st.finals.values()) == 60
    stats = (await system.mock_get("/_mock/stats"))["providers"]["cloudaten_voice"]
    assert (stats["accepted"], stats["spacing_violations"]) == (60, 0)
    decided = {
        m["uid"]: STATUSES[m["final_status"]].value
        for m in await system.mock_get("/_mock/messages?provider=cloudaten_voice")
    }
    got = {f"{cid}.{r.index}": r.status async for r in client.results(cid)}
    assert got == decided
