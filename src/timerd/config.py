"""Settings: each declared once with its default and help, loaded with a fixed precedence.

Lowest to highest: built-in defaults, the TOML file, `TIMERD_*` environment variables,
command-line flags. One name everywhere: field `grace_s` is TOML `grace_s`, env
`TIMERD_GRACE_S` and flag `--grace-s`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import socket
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeGuard

import platformdirs

from timerd.errors import ConfigError

APP_NAME = "timerd"
ENV_PREFIX = "TIMERD_"
TEN_YEARS_S = 10 * 365.25 * 86400
SYNCHRONOUS_MODES = ("off", "normal", "full", "extra")
LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("debug", "info", "warning", "error")
DEFAULT_DENY_NETWORKS = (
    "0.0.0.0/8",
    "169.254.0.0/16",
    "100.100.100.200/32",
    "192.0.0.192/32",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "::/128",
    "fe80::/10",
    "fd00:ec2::254/128",
    "ff00::/8",
)
DEFAULT_DENY_HOSTS = ("metadata.google.internal",)
POSTGRES_URL_SCHEMES = ("postgresql://", "postgres://")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def default_db_path() -> Path:
    """Return the database path in the platform's user data folder."""
    return platformdirs.user_data_path(APP_NAME) / "timerd.db"


def is_postgres_url(db: object) -> TypeGuard[str]:
    """Tell whether `db` names a PostgreSQL database (`postgresql://` or `postgres://`)."""
    return isinstance(db, str) and db.startswith(POSTGRES_URL_SCHEMES)


def node_id_of(settings: Settings) -> str:
    """Return this node's id: the `node_id` setting, or `<hostname>-<pid>` when it is empty."""
    return settings.node_id or f"{socket.gethostname()}-{os.getpid()}"


def default_config_path() -> Path:
    """Return the config file path in the platform's user config folder."""
    return platformdirs.user_config_path(APP_NAME) / "timerd.toml"


def _setting(default: Any, help: str, **kw: Any) -> Any:
    # a secret never shows in repr(Settings) nor in an error message
    return field(default=default, repr=not kw.get("secret"), metadata={"help": help, **kw})


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting of the daemon."""

    host: str = _setting("127.0.0.1", "Address to listen on.")
    port: int = _setting(8000, "TCP port to listen on; 0 picks a free one.", min=0, max=65535)
    # a PostgreSQL URL stays a string: Path() would collapse its `//`
    db: Path | str = _setting(
        Path("~timerd-default"),
        "SQLite database file (default: the user data folder), or a postgresql:// URL.",
    )
    synchronous: str = _setting(
        "full",
        "SQLite synchronous mode; 'full' survives power loss, 'normal' only process crashes.",
        choices=SYNCHRONOUS_MODES,
    )
    max_delay_s: float = _setting(TEN_YEARS_S, "Longest delay a timer may have.", min=0)
    max_body_bytes: int = _setting(1_048_576, "Largest request body accepted.", min=1024)
    request_body_timeout_s: float = _setting(
        30.0, "Longest a request body may take to arrive; slower ones get 408.", min=0.001
    )
    max_url_length: int = _setting(2048, "Longest webhook URL accepted.", min=16)
    batch_max: int = _setting(1000, "Most timers in one POST /timers/batch.", min=1)
    list_limit_max: int = _setting(1000, "Largest page size of GET /timers.", min=1)
    max_attempts: int = _setting(8, "Delivery attempts before a timer is failed.", min=1)
    attempt_timeout_s: float = _setting(10.0, "Time limit of one delivery attempt.", min=0.001)
    backoff_base_s: float = _setting(1.0, "Delay before the first retry; doubles each time.", min=0)
    backoff_max_s: float = _setting(600.0, "Longest delay between two attempts.", min=0)
    retry_after_max_s: float = _setting(
        3600.0, "Cap on a receiver's Retry-After before the next attempt.", min=0
    )
    max_in_flight: int = _setting(512, "Most webhook requests in flight at once.", min=1)
    max_per_host: int = _setting(128, "Most webhook requests in flight to one host.", min=1)
    dispatch_queue_max: int = _setting(
        20_000, "Most due timers waiting for a delivery slot.", min=1
    )
    catchup_rate_per_s: float = _setting(
        10_000.0, "Deliveries per second for timers that fell due while timerd was down.", min=1
    )
    window_s: float = _setting(
        60.0, "Timers due within this many seconds are held in memory.", min=1
    )
    window_max: int = _setting(50_000, "Most timers held in memory at once.", min=100)
    write_queue_max: int = _setting(
        50_000, "Most writes waiting for a commit before creates get 503.", min=10
    )
    grace_s: float = _setting(
        10.0,
        "On shutdown, how long in-flight deliveries may finish (never less than "
        "attempt_timeout_s + 1).",
        min=0,
    )
    attempts_kept: int = _setting(20, "Delivery attempts kept in each timer's history.", min=1)
    idempotency_retention_s: float = _setting(
        86_400.0, "How long an Idempotency-Key is remembered.", min=1
    )
    log_level: str = _setting("info", "Least severe log level shown.", choices=LOG_LEVELS)
    log_format: str = _setting("text", "Log format: plain text or JSON lines.", choices=LOG_FORMATS)
    token: str = _setting(
        "",
        "API token clients send as 'Authorization: Bearer <token>'; empty: no auth.",
        secret=True,
    )
    token_file: str = _setting("", "File whose first line is the API token (if token is empty).")
    insecure: bool = _setting(False, "Allow listening on a non-loopback address without a token.")
    allowed_hosts: tuple[str, ...] = _setting(
        (),
        "Host names (any port) the API answers without a token, besides loopback and its own "
        "address; '*.example.com' patterns.",
        list=True,
    )
    allow_networks: tuple[str, ...] = _setting(
        (), "Webhook destination networks allowed (CIDR list; beats a shorter deny).", list=True
    )
    deny_networks: tuple[str, ...] = _setting(
        DEFAULT_DENY_NETWORKS,
        "Webhook destination networks denied (CIDR list; link-local and metadata by default).",
        list=True,
    )
    allow_hosts: tuple[str, ...] = _setting(
        (),
        "Webhook host name patterns allowed ('*.example.com'; beats a less specific deny).",
        list=True,
    )
    deny_hosts: tuple[str, ...] = _setting(
        DEFAULT_DENY_HOSTS, "Webhook host name patterns denied.", list=True
    )
    signing_secret: str = _setting(
        "", "Sign webhooks (Standard Webhooks): 'whsec_<base64>' or a raw string.", secret=True
    )
    max_pending: int = _setting(
        10_000_000, "Most pending or retrying timers before creates get 429; 0: no limit.", min=0
    )
    node_id: str = _setting(
        "", "This node's id, sent as Timerd-Node and listed by GET /nodes; empty: <hostname>-<pid>."
    )
    node_lease_s: float = _setting(
        10.0, "PostgreSQL: a node not seen for this long is dead; heartbeats every third.", min=0.3
    )
    max_clock_skew_s: float = _setting(
        1.0,
        "PostgreSQL: refuse to start when this node's clock is off the database's by more.",
        min=0,
    )

    def __post_init__(self) -> None:
        if self.db == Path("~timerd-default"):
            object.__setattr__(self, "db", default_db_path())
        elif not is_postgres_url(self.db):
            object.__setattr__(self, "db", Path(self.db).expanduser())


def setting_fields() -> list[dataclasses.Field[Any]]:
    """Return the declared settings, in order."""
    return list(fields(Settings))


def env_name(name: str) -> str:
    """Return the environment variable of a setting."""
    return ENV_PREFIX + name.upper()


def load_settings(
    *,
    config_file: Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build Settings from defaults, the TOML file, `TIMERD_*` env and `overrides` (flags).

    Raises ConfigError with one readable line for an unreadable file, an unknown key or a
    bad value.
    """
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    path = config_file or _env_path(env.get(ENV_PREFIX + "CONFIG"))
    if path is None and default_config_path().is_file():
        path = default_config_path()
    if path is not None:
        values.update(_read_toml(path))
    for f in setting_fields():
        raw = env.get(env_name(f.name))
        if raw is not None and raw != "":
            values[f.name] = _coerce(f, raw, env_name(f.name))
    for name, value in (overrides or {}).items():
        if value is not None:
            values[name] = value
    by_name = {f.name: f for f in setting_fields()}
    checked = {name: _coerce(by_name[name], value, name) for name, value in values.items()}
    return Settings(**checked)


def _env_path(raw: str | None) -> Path | None:
    return Path(raw).expanduser() if raw else None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    known = {f.name for f in setting_fields()}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"config file {path}: unknown setting {unknown[0]!r}")
    return data


def _coerce(f: dataclasses.Field[Any], value: Any, source: str) -> Any:
    """Convert `value` to the field's type and check its bounds."""
    kind = f.type if isinstance(f.type, str) else f.type.__name__
    try:
        if kind == "int":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            result: Any = int(value)
        elif kind == "float":
            if isinstance(value, bool):
                raise ValueError
            result = float(value)
            if not math.isfinite(result):
                raise ValueError
        elif kind == "bool":
            result = _to_bool(value)
        elif kind == "tuple[str, ...]":
            result = _to_list(value)
        elif kind in ("Path", "Path | str"):
            if not isinstance(value, str | Path) or str(value) == "":
                raise ValueError
            result = value if is_postgres_url(value) else Path(value).expanduser()
        else:
            if not isinstance(value, str):
                raise ValueError
            result = value.lower() if "choices" in f.metadata else value
    except (TypeError, ValueError):
        got = "another type" if f.metadata.get("secret") else repr(value)
        raise ConfigError(f"{source}: expected {_kind_name(kind)}, got {got}") from None
    meta = f.metadata
    if "choices" in meta and result not in meta["choices"]:
        raise ConfigError(f"{source}: must be one of {', '.join(meta['choices'])}, got {value!r}")
    if "min" in meta and result < meta["min"]:
        raise ConfigError(f"{source}: must be at least {meta['min']}, got {value!r}")
    if "max" in meta and result > meta["max"]:
        raise ConfigError(f"{source}: must be at most {meta['max']}, got {value!r}")
    return result


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError


def _to_list(value: Any) -> tuple[str, ...]:
    """Accept a TOML array of strings or a comma-separated string (env, flags)."""
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    if isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
        return tuple(item.strip() for item in value if item.strip())
    raise ValueError


def _kind_name(kind: str) -> str:
    names = {
        "int": "an integer",
        "float": "a number",
        "Path": "a path",
        "Path | str": "a path or a postgresql:// URL",
        "bool": "true or false",
        "tuple[str, ...]": "a list of strings",
    }
    return names.get(kind, "a string")


def read_token(settings: Settings) -> str:
    """Return the API token of `settings` ('' for none); raise ConfigError for a bad token_file."""
    if settings.token:
        return settings.token
    if not settings.token_file:
        return ""
    path = Path(settings.token_file).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"token_file: cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"token_file: {path} is not UTF-8 text") from None
    lines = text.splitlines()
    token = lines[0].strip() if lines else ""
    if not token:
        raise ConfigError(f"token_file: {path} is empty")
    return token
