"""`timerd nodes`: the nodes sharing the timer set, as `GET /nodes` lists them."""

from __future__ import annotations

import json
import time
from typing import Any

import click

from timerd.cli.db_option import Db
from timerd.cli.errors import CliError
from timerd.cli.list_command import render_table
from timerd.cli.target import addr_option, daemon_db_option, locate, verbose_option
from timerd.cli.times import format_left, format_time
from timerd.errors import TimerdError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
_FIELDS = {"id": str, "started_at": float | int, "last_seen_at": float | int, "version": str}


@click.command(context_settings=CONTEXT)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@addr_option
@daemon_db_option
@verbose_option
def nodes(as_json: bool, addr: str | None, db: Db | None, verbose: bool) -> None:
    """List the live nodes sharing the timer set (on SQLite: the one daemon).

    A node is live while it was seen within node_lease_s; one that stopped cleanly is gone
    at once.

    \b
    Example:
      timerd nodes --addr http://127.0.0.1:8000
    """
    target = locate(addr, db, verbose=verbose)
    try:
        answer = target.client().request("GET", "/nodes")
    except TimerdError as exc:
        message = str(exc)
        raise CliError(
            message if target.addr in message else f"{message} (timerd at {target.addr})"
        ) from None
    rows = _nodes_of(answer, target.addr)
    if as_json:
        click.echo(json.dumps({"nodes": rows}, indent=2))
        return
    if not rows:
        click.echo("no live nodes", err=True)
        return
    now = time.time()
    render_table(
        ["ID", "VERSION", "STARTED", "UP", "LAST SEEN"],
        (
            [
                r["id"],
                r["version"],
                format_time(r["started_at"]),
                format_left(now - r["started_at"]),
                f"{format_left(now - r['last_seen_at'])} ago",
            ]
            for r in rows
        ),
    )


def _nodes_of(answer: Any, addr: str) -> list[dict[str, Any]]:
    """The answer's node list, checked; CliError if it is not what timerd answers."""
    found = answer.get("nodes") if isinstance(answer, dict) else None
    if not isinstance(found, list) or not all(
        isinstance(n, dict) and all(isinstance(n.get(k), t) for k, t in _FIELDS.items())
        for n in found
    ):
        raise CliError(f"{addr} did not answer like timerd: GET /nodes gave no node list")
    return found
