"""Shared by the backup tests: the ``dtr`` command run in this process, small images, reading a
registry's whole content back."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from dtr.cli import main
from tests.oci import get, pulls_whole, push_image

PASSPHRASE = "correct horse battery staple"


async def dtr_cli(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    """``dtr ARGS`` in a thread of this process (the event loop keeps running): (status, stdout, stderr)."""
    capsys.readouterr()
    status = await asyncio.to_thread(main, [str(a) for a in args])
    out, err = capsys.readouterr()
    return status, out, err


def refusal(err: str) -> str:
    """The one line a refused command printed (no traceback)."""
    assert "Traceback" not in err, err
    lines = [x for x in err.splitlines() if x.startswith("dtr: ") and "warning" not in x]
    assert len(lines) == 1, err
    return lines[0]


async def push_small(http: aiohttp.ClientSession, base: str, repo: str, tag: str) -> bytes:
    """A two-layer image with random bytes; returns its manifest."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "tag": tag}).encode()
    return await push_image(http, base, repo, tag, config, [os.urandom(20_000), os.urandom(3_000)])


async def tags(http: aiohttp.ClientSession, base: str) -> list[tuple[str, str]]:
    """Every (repository, tag) the registry at ``base`` lists."""
    status, body = await get(http, f"{base}/v2/_catalog?n=1000", "application/json")
    assert status == 200, body
    found = []
    for repo in json.loads(body)["repositories"]:
        status, body = await get(http, f"{base}/v2/{repo}/tags/list?n=1000", "application/json")
        assert status == 200, body
        found += [(repo, t) for t in json.loads(body)["tags"] or []]
    return found


async def all_pull_whole(http: aiohttp.ClientSession, base: str, pushed: dict[tuple[str, str], bytes]
                         ) -> list[tuple[str, str]]:
    """Every tag the registry lists is one of ``pushed`` and pulls back whole (digests verified);
    returns the tags."""
    found = await tags(http, base)
    for repo, tag in found:
        await pulls_whole(http, base, repo, tag, pushed[(repo, tag)])
    return found


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def headers(token: str) -> dict[str, Any]:
    return {"Authorization": f"Bearer {token}"}
