"""Config reloads one at a time: the config read last is the one in force."""

from __future__ import annotations

import asyncio
import threading

from exporter.config import Config, ConfigError, parse_config
from exporter.registry import VENDORS
from exporter.reloader import ConfigReloader


def config(*names: str) -> Config:
    accounts = [{"name": n, "partner_id": 1, "api_key": f"key-{n}"} for n in names]
    return parse_config({"glance": accounts}, VENDORS)


class Target:
    """What the daemon does with a reload, recorded."""

    def __init__(self) -> None:
        self.applied: list[Config] = []
        self.rejected = 0
        self.reasons: list[str] = []

    def apply_config(self, new: Config) -> None:
        self.applied.append(new)

    def config_rejected(self, reason: str) -> None:
        self.rejected += 1
        self.reasons.append(reason)


async def test_two_reloads_at_once_apply_in_the_order_asked() -> None:
    # Found by a probe: the first reload read a large file slowly, the second read the
    # new one and was applied first, then the first was applied over it: an account the
    # second removed came back, though the file no longer had it.
    files = [config("alpha", "beta"), config("alpha")]  # the file, as each read finds it
    first_reading, let_first_finish = threading.Event(), threading.Event()
    reads: list[int] = []

    def load() -> Config:
        reads.append(len(reads))
        if len(reads) == 1:
            first_reading.set()
            let_first_finish.wait(10)
        return files[len(reads) - 1]

    target = Target()
    reloader = ConfigReloader(load, target)
    first = asyncio.create_task(reloader.reload())
    await asyncio.to_thread(first_reading.wait, 10)
    second = asyncio.create_task(reloader.reload())
    for _ in range(5):
        await asyncio.sleep(0)  # turns of the loop, for the second to start if it could
    assert reads == [0]  # the second waits for the first
    let_first_finish.set()
    assert list(await asyncio.gather(first, second)) == [None, None]
    assert [[a.common.name for a in c.accounts] for c in target.applied] == [
        ["alpha", "beta"],
        ["alpha"],
    ]


async def test_a_refused_config_is_said_and_the_next_reload_still_runs() -> None:
    answers: list[Config | Exception] = [
        ConfigError("glance[0].partner_id", "required"),
        config("a"),
    ]

    def load() -> Config:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    target = Target()
    reloader = ConfigReloader(load, target)
    assert await reloader.reload() == "glance[0].partner_id: required"
    assert await reloader.reload() is None
    assert (target.rejected, len(target.applied)) == (1, 1)
    assert target.reasons == ["glance[0].partner_id: required"]  # for the status page
