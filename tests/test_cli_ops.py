"""`timerd stats` and `timerd backup`, the figures they print, and usage errors of the CLI."""

from __future__ import annotations

import asyncio
import json
import math
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from click.testing import CliRunner, Result

from tests.conftest import Receiver
from tests.waiting import eventually
from timerd.cli.group import cli
from timerd.config import Settings
from timerd.metrics import Metrics
from timerd.metrics_summary import (
    Bucket,
    NotTimerdMetrics,
    format_seconds,
    histogram_quantile,
    parse_figures,
    quantile_text,
)
from timerd.models import Status

Client = TestClient[Any, Any]


def _invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, prog_name="timerd")


async def _ainvoke(*args: str, env: dict[str, str] | None = None) -> Result:
    """Run the CLI in a thread so the in-process daemon keeps answering."""
    return await asyncio.to_thread(_invoke, *args, env=env)


def _one_error_line(result: Result) -> str:
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


# figures ------------------------------------------------------------------------------------


def test_histogram_quantile_interpolates_like_prometheus() -> None:
    buckets = [Bucket(0.1, 50), Bucket(0.2, 90), Bucket(0.5, 100), Bucket(math.inf, 100)]
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.1)
    assert histogram_quantile(0.7, buckets) == pytest.approx(0.15)
    assert histogram_quantile(0.99, buckets) == pytest.approx(0.2 + 0.3 * 0.9)
    assert histogram_quantile(0.25, buckets) == pytest.approx(0.05)


def test_histogram_quantile_in_the_inf_bucket_is_only_a_lower_bound() -> None:
    """Issue 16, item 6: a bucket bound must never be printed as if it were measured."""
    buckets = [Bucket(1.0, 1), Bucket(math.inf, 10)]
    assert histogram_quantile(0.99, buckets) == math.inf
    assert quantile_text(histogram_quantile(0.99, buckets), buckets) == "over 1.00 s"
    assert quantile_text(histogram_quantile(0.05, buckets), buckets) == "500 ms"


def test_histogram_quantile_of_nothing_is_none() -> None:
    assert histogram_quantile(0.5, []) is None
    assert histogram_quantile(0.5, [Bucket(1.0, 0), Bucket(math.inf, 0)]) is None


def test_parse_figures_reads_timerds_own_metrics() -> None:
    metrics = Metrics()
    metrics.created.inc(7)
    metrics.deliveries.labels("delivered").inc(4)
    metrics.deliveries.labels("retry").inc(2)
    metrics.deliveries.labels("failed").inc(1)
    metrics.heap_size.set(3)
    metrics.in_flight.set(2)
    metrics.set_counts(dict.fromkeys(Status, 0) | {Status.PENDING: 3, Status.FIRED: 4})
    for value in (0.002, 0.002, 0.004, 0.02):
        metrics.lateness_seconds.observe(value)
    figures = parse_figures(metrics.render().decode())
    assert figures.timers == {
        "pending": 3,
        "retrying": 0,
        "fired": 4,
        "failed": 0,
        "cancelled": 0,
    }
    assert (figures.created, figures.delivered, figures.retried, figures.failed) == (7, 4, 2, 1)
    assert (figures.heap_size, figures.in_flight) == (3, 2)
    assert figures.lateness_count == 4
    p50 = figures.lateness_quantile_s(0.5)
    assert p50 is not None
    assert 0.001 <= p50 <= 0.0025
    data = figures.to_json()
    assert data["lateness_s"]["buckets"][-1] == ["+Inf", 4]
    json.dumps(data)  # plain JSON, no infinities


@pytest.mark.parametrize("text", ["", "# HELP other_metric x\nother_metric 1\n", "{{{ not metrics"])
def test_parse_figures_refuses_what_is_not_timerd(text: str) -> None:
    with pytest.raises(NotTimerdMetrics):
        parse_figures(text)


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, "-"), (0.00042, "0.42 ms"), (0.0123, "12 ms"), (0.5, "500 ms"), (2.5, "2.50 s")],
)
def test_format_seconds(value: float | None, text: str) -> None:
    assert format_seconds(value) == text


# timerd stats -------------------------------------------------------------------------------


async def test_stats_prints_the_headline_figures(api: Client, receiver: Receiver) -> None:
    for seconds in (0, 3600):
        resp = await api.post("/timers", json={"seconds": seconds, "url": receiver.url})
        assert resp.status == 201
    await receiver.wait_for(1)
    addr = str(api.make_url("")).rstrip("/")
    data: dict[str, Any] = {}

    async def delivered() -> bool:
        result = await _ainvoke("stats", "--addr", addr, "--json")
        assert result.exit_code == 0, result.output
        data.update(json.loads(result.stdout))
        return bool(data["deliveries"]["delivered"] == 1)

    await eventually(delivered, "stats to count the delivery", timeout_s=5)
    assert data["addr"] == addr
    assert data["created"] == 2
    assert data["lateness_s"]["count"] == 1
    assert set(data["timers"]) == {s.value for s in Status}

    result = await _ainvoke("stats", "--addr", addr)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == [
        "daemon",
        "timers",
        "created",
        "deliveries",
        "scheduler",
        "lateness",
        "overdue",
    ]
    assert "created     2" in lines
    assert "delivered 1" in result.stdout
    assert "p50 " in result.stdout
    assert "(1 first attempts)" in result.stdout
    assert "overdue     0 first attempts" in result.stdout


def test_stats_on_a_daemon_that_is_not_there_is_one_line() -> None:
    result = _invoke("stats", "--addr", "http://127.0.0.1:9")
    line = _one_error_line(result)
    assert line.startswith("timerd: error: cannot reach timerd at http://127.0.0.1:9")


async def test_stats_on_something_else_is_one_line(receiver: Receiver) -> None:
    result = await _ainvoke("stats", "--addr", receiver.url)
    assert "did not answer like timerd" in _one_error_line(result)


# timerd backup ------------------------------------------------------------------------------


async def test_backup_command_copies_the_running_daemons_database(
    api: Client, settings: Settings, tmp_path: Path
) -> None:
    resp = await api.post("/timers", json={"seconds": 3600, "url": "http://127.0.0.1:9/h"})
    timer_id = (await resp.json())["id"]
    target = tmp_path / "copy.db"
    result = await _ainvoke("backup", str(target), "--db", str(settings.db))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"backed up {settings.db} to {target}: ")
    assert "1 timers" in result.stdout
    conn = sqlite3.connect(target)
    try:
        assert conn.execute("SELECT id FROM timers").fetchall() == [(timer_id,)]
    finally:
        conn.close()


async def test_backup_defaults_to_the_configured_database(
    api: Client, settings: Settings, tmp_path: Path
) -> None:
    await api.post("/timers", json={"seconds": 3600, "url": "http://127.0.0.1:9/h"})
    target = tmp_path / "copy.db"
    env = {"TIMERD_DB": str(settings.db), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    result = await _ainvoke("backup", str(target), env=env)
    assert result.exit_code == 0, result.output
    assert f"backed up {settings.db} to {target}" in result.stdout


def test_backup_of_a_missing_database_is_one_line(tmp_path: Path) -> None:
    result = _invoke("backup", str(tmp_path / "copy.db"), "--db", str(tmp_path / "none.db"))
    assert "no database at" in _one_error_line(result)
    assert not (tmp_path / "copy.db").exists()


@pytest.mark.parametrize("command", ["backup", "stats"])
def test_help_carries_an_example(command: str) -> None:
    result = _invoke(command, "-h")
    assert result.exit_code == 0
    assert f"timerd {command}" in result.stdout


# usage errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["serve", "--bogus"], "No such option '--bogus'"),
        (["show"], "Missing argument 'ID'"),
        (["list", "--status", "sleeping"], "'sleeping' is not one of 'pending'"),
        (["frobnicate"], "No such command 'frobnicate'"),
    ],
    ids=["unknown option", "missing argument", "bad choice", "unknown subcommand"],
)
def test_a_usage_error_is_one_line_on_stderr_and_exit_2(args: list[str], expected: str) -> None:
    result = _invoke(*args)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    line = result.stderr.rstrip("\n")
    assert line.startswith("timerd: error: "), line
    assert expected in line
    command = "timerd" if args[0] == "frobnicate" else f"timerd {args[0]}"
    assert line.endswith(f" (see '{command} --help')"), line


def test_help_and_a_bare_timerd_still_print_the_help() -> None:
    helped = _invoke("serve", "--help")
    assert helped.exit_code == 0
    assert helped.stdout.startswith("Usage: timerd serve [OPTIONS]\n")
    bare = _invoke()  # exit 2 on click >= 8.2, 0 before
    assert "Usage: timerd [OPTIONS] COMMAND [ARGS]..." in bare.output
    assert "Commands:" in bare.output
    assert "timerd: error" not in bare.output
