"""The commands on one timer: add, show, fire, cancel, reschedule, attempts."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from timerd.cli.db_option import Db
from timerd.cli.errors import CliError
from timerd.cli.list_command import read_db, render_table, run_async
from timerd.cli.options import (
    CONTEXT,
    call,
    daemon_options,
    db_option,
    json_option,
)
from timerd.cli.target import (
    addr_option,
    locate,
    verbose_option,
)
from timerd.cli.times import format_left, format_time, parse_duration, parse_instant
from timerd.models import redact_url
from timerd.store import display_db


def _time_body(
    in_: str | None,
    at: str | None,
    hours: int | None,
    minutes: int | None,
    seconds: float | None,
) -> tuple[dict[str, Any], float]:
    """Return the body's time fields and the due instant they ask for (as of now)."""
    parts = [in_ is not None, at is not None, any(v is not None for v in (hours, minutes, seconds))]
    if sum(parts) > 1:
        raise click.UsageError("give one of --in, --at, or --hours/--minutes/--seconds")
    now = time.time()
    if in_ is not None:
        delay_s = parse_duration(in_)
        return {"seconds": delay_s}, now + delay_s
    if at is not None:
        when = parse_instant(at)  # local time when it has no offset: the API needs one
        return {"fire_at": when.isoformat()}, when.timestamp()
    if parts[2]:
        body: dict[str, Any] = {}
        for name, value in (("hours", hours), ("minutes", minutes), ("seconds", seconds)):
            if value is not None:
                body[name] = value
        delay_s = (hours or 0) * 3600 + (minutes or 0) * 60 + (seconds or 0)
        return body, now + delay_s
    raise click.UsageError("say when: --in 1h2m3s, --at INSTANT, or --hours/--minutes/--seconds")


def _duration(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None:
        try:
            parse_duration(value)
        except click.BadParameter as exc:
            exc.ctx, exc.param = ctx, param
            raise
    return value


def _instant(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None:
        try:
            parse_instant(value)
        except click.BadParameter as exc:
            exc.ctx, exc.param = ctx, param
            raise
    return value


_TIME_FLAGS = {"fire_at": "--at", "url": "URL"}
_DURATION_HELP = "Delay like 1d12h, 1.5h, 10m or 90s (units d, h, m, s; fractions allowed)."
_INSTANT_HELP = "Due time, RFC 3339: 2026-12-24T10:00:00 is local time, or give an offset/Z."


@click.command(context_settings=CONTEXT)
@click.argument("url")
@click.option("--in", "in_", metavar="DURATION", callback=_duration, help=_DURATION_HELP)
@click.option("--at", metavar="INSTANT", callback=_instant, help=_INSTANT_HELP)
@click.option("--hours", type=click.IntRange(min=0), help="Hours of delay.")
@click.option("--minutes", type=click.IntRange(min=0), help="Minutes of delay.")
@click.option("--seconds", type=click.FloatRange(min=0), help="Seconds of delay.")
@click.option("--idempotency-key", help="Create at most once for this key (24 h).")
@json_option
@daemon_options
def add(
    url: str,
    in_: str | None,
    at: str | None,
    hours: int | None,
    minutes: int | None,
    seconds: float | None,
    idempotency_key: str | None,
    as_json: bool,
    addr: str | None,
    db: Path | None,
    verbose: bool,
) -> None:
    """Create a timer that POSTs to URL/<id>: print its id, and on stderr when it is due.

    One of --in, --at or --hours/--minutes/--seconds is required.

    \b
    Example:
      timerd add https://example.com/hook --in 4h0m1s
      id=$(timerd add https://example.com/hook --at 2026-12-24T10:00:00)
    """
    body, due_at = _time_body(in_, at, hours, minutes, seconds)
    body = {"url": url, **body}
    target = locate(addr, db, verbose=verbose)
    timer_id = call(target, lambda: target.client().create(body, idempotency_key), _TIME_FLAGS)
    if as_json:
        click.echo(json.dumps({"id": timer_id, "fire_at": round(due_at, 3)}))
        return
    click.echo(timer_id)
    left = format_left(due_at - time.time())
    click.echo(f"due {format_time(due_at)} (in {left})", err=True)


@click.command(context_settings=CONTEXT)
@click.argument("timer_id", metavar="ID")
@json_option
@addr_option
@db_option
@verbose_option
def show(timer_id: str, as_json: bool, addr: str | None, db: Db | None, verbose: bool) -> None:
    """Show one timer.

    \b
    Example:
      timerd show P88hOXPkZ1dQIMlaHyP8ImH --json
    """
    if db is not None:
        if addr is not None:
            raise click.UsageError("give either --addr or --db, not both")
        found = run_async(read_db(db, lambda store: store.get_timer(timer_id)))
        if found is None:
            raise CliError(f"no timer {timer_id} in {display_db(db)}")
        data = found.to_json(time.time())
    else:
        target = locate(addr, None, verbose=verbose)
        data = call(target, lambda: target.client().get(timer_id))
    _print_timer(data, as_json)


def _print_timer(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    for key in (
        "id",
        "status",
        "url",
        "time_left",
        "fire_at",
        "created_at",
        "next_attempt_at",
        "fired_at",
        "attempts",
        "last_status_code",
        "last_error",
    ):
        value = data.get(key)
        if key.endswith("_at"):
            value = format_time(value)
        elif key == "url":
            value = redact_url(str(value))
        elif key == "time_left":
            value = format_left(value)
        click.echo(f"{key + ':':<18}{'-' if value is None else value}")


@click.command(context_settings=CONTEXT)
@click.argument("timer_id", metavar="ID")
@json_option
@daemon_options
def fire(timer_id: str, as_json: bool, addr: str | None, db: Path | None, verbose: bool) -> None:
    """Fire a timer now instead of at its time (also retries a failed one).

    \b
    Example:
      timerd fire P88hOXPkZ1dQIMlaHyP8ImH
    """
    target = locate(addr, db, verbose=verbose)
    data = call(target, lambda: target.client().fire(timer_id))
    _echo_result(data, as_json, f"firing {timer_id}")


@click.command(context_settings=CONTEXT)
@click.argument("timer_id", metavar="ID")
@json_option
@daemon_options
def cancel(timer_id: str, as_json: bool, addr: str | None, db: Path | None, verbose: bool) -> None:
    """Cancel a timer that has not fired.

    \b
    Example:
      timerd cancel P88hOXPkZ1dQIMlaHyP8ImH
    """
    target = locate(addr, db, verbose=verbose)
    data = call(target, lambda: target.client().cancel(timer_id))
    _echo_result(data, as_json, f"cancelled {timer_id}")


def _echo_result(data: dict[str, Any], as_json: bool, line: str) -> None:
    click.echo(json.dumps(data, indent=2) if as_json else line)


@click.command(context_settings=CONTEXT)
@click.argument("timer_id", metavar="ID")
@click.option("--in", "in_", metavar="DURATION", callback=_duration, help=_DURATION_HELP)
@click.option("--at", metavar="INSTANT", callback=_instant, help=_INSTANT_HELP)
@click.option("--url", help="New webhook URL.")
@json_option
@daemon_options
def reschedule(
    timer_id: str,
    in_: str | None,
    at: str | None,
    url: str | None,
    as_json: bool,
    addr: str | None,
    db: Path | None,
    verbose: bool,
) -> None:
    """Move a pending or retrying timer, and/or change its URL.

    \b
    Example:
      timerd reschedule P88hOXPkZ1dQIMlaHyP8ImH --in 10m
    """
    body: dict[str, Any] = {}
    if in_ is not None or at is not None:
        body.update(_time_body(in_, at, None, None, None)[0])
    if url is not None:
        body["url"] = url
    if not body:
        raise click.UsageError("give --in, --at or --url")
    target = locate(addr, db, verbose=verbose)
    flags = {**_TIME_FLAGS, "url": "--url"}
    data = call(target, lambda: target.client().reschedule(timer_id, body), flags)
    due = f"{format_time(data['fire_at'])} (in {format_left(data['fire_at'] - time.time())})"
    _echo_result(data, as_json, f"{timer_id} due {due}")


@click.command(context_settings=CONTEXT)
@click.argument("timer_id", metavar="ID")
@json_option
@daemon_options
def attempts(
    timer_id: str, as_json: bool, addr: str | None, db: Path | None, verbose: bool
) -> None:
    """Show a timer's delivery attempts, oldest first.

    \b
    Example:
      timerd attempts P88hOXPkZ1dQIMlaHyP8ImH
    """
    target = locate(addr, db, verbose=verbose)
    rows = call(target, lambda: target.client().attempts(timer_id))
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no attempts yet", err=True)
        return
    render_table(
        ["#", "STARTED", "DURATION", "STATUS", "OUTCOME", "ERROR"],
        (
            [
                str(r["attempt"]),
                format_time(r["started_at"]),
                f"{r['duration_ms']:.1f} ms",
                "-" if r["status_code"] is None else str(r["status_code"]),
                str(r["outcome"]),
                r["error"] or "",
            ]
            for r in rows
        ),
    )
