"""The README's examples work as typed (issue 16, item 10): its ids look like real ones, and its
paging example, run by a shell against a real daemon, walks every page."""

from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.conftest import DaemonStarter, create_timer
from timerd.models import is_plausible_id, new_id

pytestmark = pytest.mark.e2e

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_example_ids_are_shaped_like_real_ones() -> None:
    ids = set(re.findall(r"/timers/([A-Za-z0-9_-]{16,})", README))
    ids |= set(re.findall(r'"id": "([^"]+)"', README))
    assert ids
    for example in ids:
        assert len(example) == len(new_id()), example
        assert is_plausible_id(example), example


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
async def test_the_paging_example_runs_as_typed(
    daemon: DaemonStarter, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    lines = [line for line in README.splitlines() if "cursor" in line and "curl" in line]
    assert len(lines) == 2, lines
    d = await daemon(tmp_path / "x.db")
    ids = [await create_timer(http, d.url, minutes=10 + n, url="http://127.0.0.1:9/h")
           for n in range(55)]  # fmt: skip
    script = "\n".join(line.replace("localhost:8000", d.url) for line in lines)
    proc = await asyncio.create_subprocess_exec(
        "sh", "-c", script, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(30):
        out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    # the second page: the five timers after the first fifty
    assert re.findall(r'"id":"([^"]+)"', out.decode()) == ids[50:]
