"""The Makefile's two installs: `make run` installs what running needs, `make test` the test tools.

Each install has its own stamp in the venv, so `make run` after `make test` (and the reverse)
installs what the other left out. `make -n` prints what make would run, against a venv folder
under tmp_path whose state the test sets up.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def _plan(target: str, venv: Path) -> list[str]:
    # as a user types it: not as a sub-make of `make test` (which prints "Leaving directory")
    env = {k: v for k, v in os.environ.items() if k not in {"MAKELEVEL", "MAKEFLAGS", "MFLAGS"}}
    done = subprocess.run(
        ["make", "--no-print-directory", "-n", target, f"VENV={venv}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return done.stdout.splitlines()


def _installs(lines: list[str]) -> list[str]:
    return [line for line in lines if "pip install" in line and "--upgrade pip" not in line]


def _stamp(path: Path) -> None:
    """Create `path` newer than pyproject.toml, as a finished install leaves it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    newer = (ROOT / "pyproject.toml").stat().st_mtime + 10
    os.utime(path, (newer, newer))


def test_make_run_installs_what_running_needs_and_not_the_test_tools(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    plan = _plan("run", venv)
    assert any(line.endswith(f"-m venv {venv}") for line in plan), plan
    assert _installs(plan) == [f"{venv}/bin/python -m pip install --quiet -e ."], plan
    assert plan[-1] == f"{venv}/bin/timerd serve"
    # and it says where the CLI it installed is (it is not on PATH)
    assert any(f"{venv}/bin/timerd list" in line for line in plan), plan


def test_make_test_after_make_run_installs_the_test_extra(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    _stamp(venv / "bin" / "python")
    _stamp(venv / ".installed-run")
    plan = _plan("test", venv)
    assert not any("-m venv" in line for line in plan), plan
    assert _installs(plan) == [f"{venv}/bin/python -m pip install --quiet -e '.[test]'"], plan
    assert f"{venv}/bin/pytest" in plan


def test_make_run_after_make_test_and_a_second_run_install_nothing_new(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    _stamp(venv / "bin" / "python")
    _stamp(venv / ".installed-test")
    assert _installs(_plan("run", venv)) == [f"{venv}/bin/python -m pip install --quiet -e ."]
    _stamp(venv / ".installed-run")
    assert _installs(_plan("run", venv)) == []
    assert _installs(_plan("test", venv)) == []
