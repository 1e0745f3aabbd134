"""What the commands share: the one-line error of a daemon call, and the common options."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from timerd.cli.db_option import db_flag
from timerd.cli.errors import CliError
from timerd.cli.http_client import ApiError
from timerd.cli.target import (
    Target,
    addr_option,
    daemon_db_option,
    verbose_option,
)
from timerd.errors import TimerdError
from timerd.models import Status

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
STATUS_CHOICES = [*(s.value for s in Status), "all"]


def call(target: Target | None, fn: Callable[[], T], flags: dict[str, str] | None = None) -> T:
    """Run a daemon call; its error becomes one line naming the daemon, with the user's flags.

    `flags` maps API fields to the options that set them (`fire_at` is `--at`).
    """
    try:
        return fn()
    except TimerdError as exc:
        message = str(exc)
        if isinstance(exc, ApiError) and exc.errors and flags:
            message = "; ".join(f"{flags.get(f, f)}: {m}" for f, m in exc.errors)
        if target is not None and target.addr not in message:
            message += f" (timerd at {target.addr})"
        raise CliError(message) from None


def db_option(fn: F) -> F:
    """Add `--db`, a database to read directly instead of asking the daemon."""
    return db_flag(
        "Read this database file (or postgresql:// URL) directly, read-only, instead of "
        "asking the daemon."
    )(fn)


def json_option(fn: F) -> F:
    """Add `--json` for scripts."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(
        fn
    )


def daemon_options(fn: F) -> F:
    """Add `--addr`, `--db` (the daemon running on it) and `--verbose`."""
    return addr_option(daemon_db_option(verbose_option(fn)))
