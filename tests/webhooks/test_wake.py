"""A delivery goes out when its job is queued, not at the job worker's next poll: with
``jobs.poll_interval`` at 60 s, a push's delivery arrives within 20 s (the worker is woken by the
``NOTIFY dtr_jobs`` of the queuing transaction)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.auth.constants import auth_config
from tests.webhooks.conftest import Receivers, World
from tests.webhooks.test_delivery import _push

POLL = 60.0


@pytest.fixture
def app_extra() -> dict[str, Any]:
    return {**auth_config(), "jobs": {"poll_interval": POLL}}


async def test_a_delivery_does_not_wait_for_the_workers_poll(world: World, receivers: Receivers) -> None:
    hook = await world.hook("TAG_PUSH", "acme/app", receivers.url("woken"))
    await asyncio.sleep(1)  # the worker's first look at start-up is over: the next poll is a minute away
    await _push(world, "acme/app", "v1")
    async with asyncio.timeout(POLL / 3):  # before any poll could have happened
        await receivers.wait_for("woken")
    [d] = await world.settled(hook)
    assert (d["status"], d["attempts"]) == ("succeeded", 1)
