"""Service definitions: the launchd LaunchAgent plist and the systemd units, as text.

Pure functions: every path comes in as an argument, nothing is read or written here. The files
in `packaging/` are these functions' output for placeholder paths, and a test keeps them equal.
"""

from __future__ import annotations

import math
import os
import plistlib
import re
from collections.abc import Mapping
from pathlib import Path

LABEL = "dev.timerd"
UNIT_NAME = "timerd.service"
SYSTEM_USER = "timerd"
SYSTEM_STATE_DIR = Path("/var/lib/timerd")
SYSTEM_DB = SYSTEM_STATE_DIR / "timerd.db"
SYSTEM_UNIT_PATH = Path("/etc/systemd/system") / UNIT_NAME
DEFAULT_GRACE_S = 10.0
# systemd and launchd escalate to SIGKILL after this; leave room for the grace period plus the
# final database commit and close.
STOP_MARGIN_S = 20

_SAFE_ARG = re.compile(r"[A-Za-z0-9_@%$+=:,./-]+")


def stop_timeout_s(grace_s: float = DEFAULT_GRACE_S) -> int:
    """Return the seconds a service manager should wait after SIGTERM before SIGKILL."""
    return math.ceil(grace_s) + STOP_MARGIN_S


def serve_args(exe: Path, db: Path, config: Path | None = None) -> list[str]:
    """Return the command line that runs the daemon: `exe serve --db DB [--config FILE]`."""
    for name, path in (("executable", exe), ("database", db), ("config file", config)):
        if path is not None and not path.is_absolute():
            raise ValueError(f"the {name} path must be absolute: {path}")
    args = [str(exe), "serve", "--db", str(db)]
    if config is not None:
        args += ["--config", str(config)]
    return args


def launchd_log_dir(home: Path) -> Path:
    """Return the folder of the LaunchAgent's stdout and stderr logs."""
    return home / "Library" / "Logs" / "timerd"


def render_launchd_plist(
    exe: Path,
    db: Path,
    config: Path | None = None,
    *,
    home: Path,
    grace_s: float = DEFAULT_GRACE_S,
) -> str:
    """Render the LaunchAgent plist; it runs as the logged-in user (no UserName key)."""
    logs = launchd_log_dir(home)
    agent: dict[str, object] = {
        "Label": LABEL,
        "ProgramArguments": serve_args(exe, db, config),
        "RunAtLoad": True,
        "KeepAlive": True,
        "ExitTimeOut": stop_timeout_s(grace_s),
        "Umask": 0o077,
        "EnvironmentVariables": {"PYTHONUNBUFFERED": "1"},
        "StandardOutPath": str(logs / "timerd.out.log"),
        "StandardErrorPath": str(logs / "timerd.err.log"),
    }
    return plistlib.dumps(agent, sort_keys=False).decode()


def systemd_quote(arg: str) -> str:
    """Quote one ExecStart argument for systemd, escaping `%` specifiers and `$` expansion."""
    if "\n" in arg or "\r" in arg or "\0" in arg:
        raise ValueError(f"a unit file argument cannot contain a line break or NUL: {arg!r}")
    escaped = arg.replace("%", "%%").replace("$", "$$")
    if _SAFE_ARG.fullmatch(arg) and arg != ";":
        return escaped
    return '"' + escaped.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _exec_start(exe: Path, db: Path, config: Path | None) -> str:
    return " ".join(systemd_quote(a) for a in serve_args(exe, db, config))


def _unit(sections: list[tuple[str, list[str]]]) -> str:
    blocks = ["\n".join([f"[{name}]", *lines]) for name, lines in sections]
    return "\n\n".join(blocks) + "\n"


_NOTIFY = [
    "# timerd sends READY=1 once the database is open and the port is bound.",
    "Type=notify",
    "NotifyAccess=main",
]


def render_systemd_user_unit(
    exe: Path, db: Path, config: Path | None = None, *, grace_s: float = DEFAULT_GRACE_S
) -> str:
    """Render the `systemctl --user` unit; it runs as the user who installs it."""
    service = [
        *_NOTIFY,
        f"ExecStart={_exec_start(exe, db, config)}",
        "Environment=PYTHONUNBUFFERED=1",
        "Restart=on-failure",
        "RestartSec=2s",
        f"TimeoutStopSec={stop_timeout_s(grace_s)}s",
        "UMask=0077",
        "NoNewPrivileges=yes",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "RestrictRealtime=yes",
        "RestrictSUIDSGID=yes",
        "LockPersonality=yes",
        "SystemCallArchitectures=native",
    ]
    return _unit(
        [
            (
                "Unit",
                [
                    "Description=timerd: fires HTTP webhooks after a delay",
                    "# A user service stops at logout unless: loginctl enable-linger $USER",
                ],
            ),
            ("Service", service),
            ("Install", ["WantedBy=default.target"]),
        ]
    )


def render_systemd_system_unit(
    exe: Path,
    db: Path = SYSTEM_DB,
    config: Path | None = None,
    *,
    grace_s: float = DEFAULT_GRACE_S,
) -> str:
    """Render the system unit: its own dynamic `timerd` user, state in /var/lib/timerd, hardened."""
    if not db.is_relative_to(SYSTEM_STATE_DIR):
        raise ValueError(f"the system service keeps its database under {SYSTEM_STATE_DIR}: {db}")
    service = [
        *_NOTIFY,
        f"ExecStart={_exec_start(exe, db, config)}",
        "Environment=PYTHONUNBUFFERED=1",
        "Restart=on-failure",
        "RestartSec=2s",
        f"TimeoutStopSec={stop_timeout_s(grace_s)}s",
        "# No package has to create the user: systemd allocates it while the service runs",
        "# (or uses a static `timerd` user if one exists, e.g. from sysusers.d) and hands it",
        "# /var/lib/timerd, mode 0700. The executable and any --config file must be readable",
        "# outside /home, which ProtectHome hides: e.g. /usr/local/bin and /etc/timerd.",
        f"User={SYSTEM_USER}",
        f"Group={SYSTEM_USER}",
        "DynamicUser=yes",
        "StateDirectory=timerd",
        "StateDirectoryMode=0700",
        "UMask=0077",
        "LimitNOFILE=65536",
        "# Ports below 1024 need AmbientCapabilities=CAP_NET_BIND_SERVICE as well.",
        "CapabilityBoundingSet=",
        "AmbientCapabilities=",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "PrivateDevices=yes",
        "PrivateUsers=yes",
        "ProtectProc=invisible",
        "ProtectHostname=yes",
        "ProtectClock=yes",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectKernelLogs=yes",
        "ProtectControlGroups=yes",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "RestrictNamespaces=yes",
        "RestrictRealtime=yes",
        "RestrictSUIDSGID=yes",
        "RemoveIPC=yes",
        "LockPersonality=yes",
        "MemoryDenyWriteExecute=yes",
        "SystemCallArchitectures=native",
        "SystemCallFilter=@system-service",
        "SystemCallFilter=~@privileged @resources",
        "SystemCallErrorNumber=EPERM",
    ]
    return _unit(
        [
            (
                "Unit",
                [
                    "Description=timerd: fires HTTP webhooks after a delay",
                    "Wants=network-online.target",
                    "After=network-online.target",
                ],
            ),
            ("Service", service),
            ("Install", ["WantedBy=multi-user.target"]),
        ]
    )


def launchd_plist_path(home: Path) -> Path:
    """Return where the LaunchAgent plist goes: ~/Library/LaunchAgents/dev.timerd.plist."""
    return home / "Library" / "LaunchAgents" / f"{LABEL}.plist"


def systemd_user_unit_path(home: Path, env: Mapping[str, str]) -> Path:
    """Return where the user unit goes: $XDG_CONFIG_HOME/systemd/user/timerd.service."""
    xdg = env.get("XDG_CONFIG_HOME", "")
    # The XDG spec says a relative value is invalid and must be ignored.
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else home / ".config"
    return base / "systemd" / "user" / UNIT_NAME


def install_path(
    platform: str,
    *,
    system: bool = False,
    home: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Path:
    """Return the service file path for `platform` (a `sys.platform` value).

    Raises ValueError for a platform without a service manager we support, and for `system`
    anywhere but Linux.
    """
    home = Path.home() if home is None else home
    env = os.environ if env is None else env
    if platform == "darwin":
        if system:
            raise ValueError("--system is for Linux; on macOS timerd runs as the user's agent")
        return launchd_plist_path(home)
    if platform.startswith("linux"):
        return SYSTEM_UNIT_PATH if system else systemd_user_unit_path(home, env)
    raise ValueError(f"no service support for platform {platform!r} (macOS and Linux only)")
