"""The built wheel is everything `timerd serve` needs: build, install in a fresh venv, fire a timer.

Builds the sdist and, from it, the wheel with the standard frontend (`python -m build`), installs
the wheel (and its dependencies, from the package index) into a new venv under tmp_path, and
runs the installed `timerd` there, far from this checkout.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import tarfile
import zipfile
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import Receiver
from tests.waiting import eventually
from timerd import __version__

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parent.parent
ASSETS = {"status.html", "status.js", "docs.html", "docs.js", "common.js", "timerd.css"}
ASSETS |= {"timer.html", "timer.js", "browse.js", "failures.js", "docs.css"}
ASSETS |= {f"vendor/{name}" for name in ("swagger-ui-bundle.js", "swagger-ui.css", "LICENSE")}
STEP_TIMEOUT_S = 240.0

# every command (and subcommand) answers --help; run inside the installed venv
HELP_ALL = """
import sys, click
from click.testing import CliRunner
from timerd.cli.group import cli
bad = []
def walk(cmd, path):
    result = CliRunner().invoke(cli, [*path, "--help"])
    if result.exit_code != 0 or "Usage:" not in result.output:
        bad.append(" ".join(path) or "timerd")
    if isinstance(cmd, click.Group):
        for name, sub in cmd.commands.items():
            walk(sub, [*path, name])
walk(cli, [])
print("checked", sys.argv[0])
sys.exit(" ".join(bad) if bad else 0)
"""


async def _run(*args: str | Path, cwd: Path | None = None) -> str:
    proc = await asyncio.create_subprocess_exec(
        *(str(a) for a in args),
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with asyncio.timeout(STEP_TIMEOUT_S):
            out, _ = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"{args} ran over {STEP_TIMEOUT_S} s") from None
    text = out.decode(errors="replace")
    assert proc.returncode == 0, f"{' '.join(map(str, args))} -> {proc.returncode}\n{text}"
    return text


def _wheel_names(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def _entry_points(wheel: Path) -> str:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt"))
        return archive.read(name).decode()


def _sdist_names(sdist: Path) -> list[str]:
    with tarfile.open(sdist) as archive:
        return archive.getnames()


def _only(folder: Path, pattern: str) -> Path:
    found = list(folder.glob(pattern))
    assert len(found) == 1, found
    return found[0]


async def test_wheel_installs_into_a_fresh_venv_and_fires_a_timer(
    tmp_path: Path, receiver: Receiver
) -> None:
    dist = tmp_path / "dist"
    await _run(sys.executable, "-m", "build", "--outdir", dist, ROOT)  # sdist, then wheel from it
    wheel = _only(dist, "timerd-*.whl")
    sdist = _only(dist, "timerd-*.tar.gz")
    assert wheel.name.startswith(f"timerd-{__version__}-")

    names = _wheel_names(wheel)
    assert {f"timerd/api/static/{a}" for a in ASSETS} <= set(names)
    assert "timerd/py.typed" in names
    assert "timerd/store/migrations.py" in names
    assert not [n for n in names if n.startswith("tests/")]
    assert "timerd = timerd.cli:main" in _entry_points(wheel)
    sdist_names = _sdist_names(sdist)
    for asset in ASSETS:
        assert any(n.endswith(f"src/timerd/api/static/{asset}") for n in sdist_names), asset

    venv = tmp_path / "venv"
    await _run(sys.executable, "-m", "venv", venv)
    py, timerd = venv / "bin" / "python", venv / "bin" / "timerd"
    await _run(py, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", wheel)
    where = await _run(py, "-c", "import timerd; print(timerd.__file__)", cwd=tmp_path)
    assert where.strip().startswith(str(venv)), where
    assert f"timerd, version {__version__}" in await _run(timerd, "--version", cwd=tmp_path)
    await _run(py, "-c", HELP_ALL, cwd=tmp_path)

    env = {k: v for k, v in os.environ.items() if not k.startswith("TIMERD_")}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg-config")  # no stray config file
    log = tmp_path / "serve.log"
    log_file = log.open("wb")  # closed after the daemon stops
    proc = await asyncio.create_subprocess_exec(
        timerd,
        "serve",
        "--port",
        "0",
        "--db",
        tmp_path / "data" / "timerd.db",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=log_file,
    )
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(20):
            line = (await proc.stdout.readline()).decode()
        assert line.startswith("listening on http://"), log.read_text()
        base = line.removeprefix("listening on ").strip()
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/ui/static/status.js") as resp:
                assert resp.status == 200  # the assets are found inside the installed package
            async with http.get(f"{base}/ui/static/vendor/swagger-ui-bundle.js") as resp:
                assert resp.status == 200  # the docs page's viewer ships inside the wheel
            async with http.get(f"{base}/") as resp:
                assert resp.status == 200
                assert "/ui/static/status.js" in await resp.text()
            async with http.post(f"{base}/timers", json={"seconds": 0, "url": receiver.url}) as r:
                assert r.status == 201, await r.text()
                timer_id = (await r.json())["id"]
            hits = await receiver.wait_for(1, timeout_s=10)
            assert hits[0].path.endswith(f"/{timer_id}")

            async def is_fired() -> bool:
                async with http.get(f"{base}/timers/{timer_id}") as resp:
                    return bool((await resp.json())["status"] == "fired")

            await eventually(is_fired, "the installed daemon's timer to fire")
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            rc = await proc.wait()
        log_file.close()
    assert rc == 0, log.read_text()
