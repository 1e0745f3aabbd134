"""`timerd service install|uninstall|status`: run timerd under launchd (macOS) or systemd (Linux).

The plan (file to write, commands to run) is built by pure functions; the commands only print
it (`--dry-run`) or carry it out, one line per step.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import click
import platformdirs

from timerd.cli import unit_files as sf
from timerd.cli.errors import CliError
from timerd.store.folders import make_private_dirs

# timerd is not on PyPI: a system install comes from a checkout (or a wheel built from one).
_SYSTEM_INSTALL = (
    "`sudo python3 -m venv /opt/timerd && sudo /opt/timerd/bin/pip install .` in a checkout "
    "(or `... pip install timerd-*.whl`), "
    "then `sudo /opt/timerd/bin/timerd service install --system`"
)
# ProtectHome=yes in the system unit makes these invisible to the service.
_HIDDEN_FROM_SYSTEM = (PurePosixPath("/home"), PurePosixPath("/root"), PurePosixPath("/run/user"))


@dataclass(frozen=True, slots=True)
class Step:
    """One command of a plan; a failing command stops the plan unless `must_succeed` is off."""

    argv: tuple[str, ...]
    must_succeed: bool = True

    def __str__(self) -> str:
        return shlex.join(self.argv)


@dataclass(frozen=True, slots=True)
class Plan:
    """What install or uninstall does: commands, then write (or remove) the file, then commands."""

    path: Path
    content: str | None
    kind: str
    dirs: tuple[Path, ...] = ()
    before: tuple[Step, ...] = ()
    after: tuple[Step, ...] = ()
    notes: tuple[str, ...] = ()


def _platform() -> str:
    return sys.platform


def _systemctl(system: bool, *args: str) -> Step:
    return Step(("systemctl", *(() if system else ("--user",)), *args))


def find_executable(
    argv0: str | None = None, which: Callable[[str], str | None] = shutil.which
) -> Path:
    """Return the absolute path of the `timerd` being run, else the one on PATH.

    Symlinks are kept (not resolved) so a Homebrew or pipx upgrade keeps the service working.
    """
    argv0 = sys.argv[0] if argv0 is None else argv0
    ran = Path(argv0)
    if ran.name == "timerd" and ran.is_file() and os.access(ran, os.X_OK):
        return Path(os.path.abspath(ran))
    found = which("timerd")
    if found is None:
        raise CliError("cannot find the timerd executable: is it on PATH?")
    return Path(os.path.abspath(found))


def install_plan(
    platform: str,
    *,
    exe: Path,
    db: Path,
    config: Path | None,
    system: bool,
    home: Path,
    env: Mapping[str, str],
    uid: int,
    existing: str | None,
) -> Plan:
    """Return the install plan; `existing` is the current file's text, if there is one."""
    path = sf.install_path(platform, system=system, home=home, env=env)
    if platform == "darwin":
        content = sf.render_launchd_plist(exe, db, config, home=home)
        # bootstrap refuses a label that is already loaded, so a reinstall unloads it first.
        before = (Step(("launchctl", "bootout", f"gui/{uid}/{sf.LABEL}"), False),)
        return Plan(
            path,
            content,
            "launchd agent",
            dirs=(sf.launchd_log_dir(home),),
            before=before if existing is not None else (),
            after=(Step(("launchctl", "bootstrap", f"gui/{uid}", str(path))),),
        )
    if system:
        content = sf.render_systemd_system_unit(exe, db, config)
    else:
        content = sf.render_systemd_user_unit(exe, db, config)
    unit = sf.UNIT_NAME
    start: tuple[Step, ...] = (_systemctl(system, "enable", "--now", unit),)
    if existing is not None and existing != content:
        # enable --now leaves a running service on its old definition.
        start = (_systemctl(system, "enable", unit), _systemctl(system, "restart", unit))
    notes = () if system else (f"to keep it running after you log out: {_linger_hint(env)}",)
    return Plan(
        path,
        content,
        "system service" if system else "user service",
        after=(_systemctl(system, "daemon-reload"), *start),
        notes=notes,
    )


def _linger_hint(env: Mapping[str, str]) -> str:
    return f"loginctl enable-linger {env.get('USER') or env.get('LOGNAME') or '$USER'}"


def uninstall_plan(
    platform: str, *, system: bool, home: Path, env: Mapping[str, str], uid: int
) -> Plan:
    """Return the uninstall plan: stop and unload the service, then remove its file."""
    path = sf.install_path(platform, system=system, home=home, env=env)
    if platform == "darwin":
        stop = Step(("launchctl", "bootout", f"gui/{uid}/{sf.LABEL}"), False)
        return Plan(path, None, "launchd agent", before=(stop,))
    return Plan(
        path,
        None,
        "system service" if system else "user service",
        before=(_systemctl(system, "disable", "--now", sf.UNIT_NAME),),
        after=(_systemctl(system, "daemon-reload"),),
    )


def status_step(platform: str, *, system: bool, uid: int) -> Step:
    """Return the command that shows the service's state."""
    if platform == "darwin":
        return Step(("launchctl", "print", f"gui/{uid}/{sf.LABEL}"), False)
    return _systemctl(system, "status", "--no-pager", "--lines=5", sf.UNIT_NAME)


def _run(step: Step) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(step.argv, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise CliError(f"cannot run {step.argv[0]}: {exc.strerror}") from None


def _do(step: Step) -> None:
    done = _run(step)
    if done.returncode == 0:
        click.echo(f"ran: {step}")
        return
    lines = (done.stderr or done.stdout).strip().splitlines()
    why = lines[-1] if lines else "no output"
    if step.must_succeed:
        raise CliError(f"`{step}` failed (exit {done.returncode}): {why}")
    click.echo(f"ran: {step} (exit {done.returncode}, ignored: {why})")


def _write(path: Path, content: str) -> None:
    try:
        make_private_dirs(path.parent)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(content, encoding="utf-8")
        tmp.chmod(0o644)
        os.replace(tmp, path)
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror}") from None


def _carry_out(plan: Plan, dry_run: bool) -> None:
    if dry_run:
        for folder in plan.dirs:
            click.echo(f"would create: {folder}/")
        for step in plan.before:
            click.echo(f"would run: {step}")
        if plan.content is None:
            click.echo(f"would remove: {plan.path}")
        else:
            click.echo(f"would write: {plan.path}")
            click.echo(plan.content, nl=False)
        for step in plan.after:
            click.echo(f"would run: {step}")
        return
    for folder in plan.dirs:
        try:
            make_private_dirs(folder)
        except OSError as exc:
            raise CliError(f"cannot create {folder}: {exc.strerror}") from None
        click.echo(f"created: {folder}/")
    for step in plan.before:
        _do(step)
    if plan.content is None:
        plan.path.unlink(missing_ok=True)
        click.echo(f"removed: {plan.path}")
    else:
        _write(plan.path, plan.content)
        click.echo(f"wrote: {plan.path}")
    for step in plan.after:
        _do(step)


def _check_system(system: bool, dry_run: bool, paths: list[Path | None]) -> None:
    if not system:
        return
    for path in paths:
        if path is None:
            continue
        real = PurePosixPath(os.path.realpath(path))
        if any(real.is_relative_to(hidden) for hidden in _HIDDEN_FROM_SYSTEM):
            raise CliError(
                f"the system service cannot read {real} (ProtectHome=yes hides it); "
                f"install timerd outside /home, e.g. {_SYSTEM_INSTALL}"
            )
    if not dry_run and os.geteuid() != 0:
        raise CliError("--system changes /etc/systemd/system: run it as root")


dry_run_option = click.option(
    "--dry-run", is_flag=True, help="Print the file and the commands instead of running them."
)
system_option = click.option(
    "--system",
    is_flag=True,
    help="Linux only: a system unit running as its own `timerd` user (needs root).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def service() -> None:
    """Run timerd as a service: a launchd agent on macOS, a systemd unit on Linux.

    Example: timerd service install --dry-run
    """


def default_db(config: Path | None) -> Path:
    """Return the database the daemon would use: the config file's `db`, else the data folder.

    Baked into the unit as `--db`, which outranks the config file, so it must agree with it.
    """
    path = config or platformdirs.user_config_path("timerd") / "timerd.toml"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        data = {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise CliError(f"cannot read config file {path}: {exc}") from None
    db = data.get("db")
    if isinstance(db, str) and db:
        return Path(db).expanduser()
    return platformdirs.user_data_path("timerd") / "timerd.db"


@service.command()
@dry_run_option
@system_option
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="TIMERD_DB",
    show_envvar=True,
    help="Database the service uses (default: the config's db, else the user data folder; "
    "/var/lib/timerd/timerd.db with --system).",
)
@click.option(
    "--config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    envvar="TIMERD_CONFIG",
    show_envvar=True,
    help="TOML config file the service reads.",
)
def install(dry_run: bool, system: bool, db: Path | None, config: Path | None) -> None:
    """Write the service file for this platform, then load and start it.

    Example: timerd service install --db ~/timers.db --dry-run
    """
    home = Path.home()
    try:
        path = sf.install_path(_platform(), system=system, home=home)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    exe = find_executable()
    config = Path(os.path.abspath(config.expanduser())) if config is not None else None
    if db is None:
        db = sf.SYSTEM_DB if system else default_db(config)
    db = Path(os.path.abspath(db.expanduser()))
    _check_system(system, dry_run, [exe, config])
    try:
        existing = path.read_text(encoding="utf-8") if path.is_file() else None
        plan = install_plan(
            _platform(),
            exe=exe,
            db=db,
            config=config,
            system=system,
            home=home,
            env=os.environ,
            uid=os.getuid(),
            existing=existing,
        )
    except (ValueError, OSError) as exc:
        raise CliError(str(exc)) from None
    _carry_out(plan, dry_run)
    if not dry_run:
        click.echo(f"timerd runs as a {plan.kind}; `timerd service status` shows it")
    for note in plan.notes:
        click.echo(f"note: {note}")


@service.command()
@dry_run_option
@system_option
def uninstall(dry_run: bool, system: bool) -> None:
    """Stop the service and remove its file; the database is kept.

    Example: timerd service uninstall
    """
    try:
        plan = uninstall_plan(
            _platform(), system=system, home=Path.home(), env=os.environ, uid=os.getuid()
        )
    except ValueError as exc:
        raise CliError(str(exc)) from None
    if not plan.path.exists():
        click.echo(f"not installed: no {plan.path}")
        return
    _check_system(system, dry_run, [])
    _carry_out(plan, dry_run)


@service.command()
@system_option
@click.pass_context
def status(ctx: click.Context, system: bool) -> None:
    """Show whether the service is installed and running; exit 1 when it is not running.

    Example: timerd service status
    """
    try:
        path = sf.install_path(_platform(), system=system)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    click.echo(f"installed: {path}" if path.exists() else f"not installed: no {path}")
    step = status_step(_platform(), system=system, uid=os.getuid())
    done = _run(step)
    click.echo(f"$ {step}")
    output = (done.stdout + done.stderr).rstrip()
    if output:
        click.echo(output)
    ctx.exit(0 if done.returncode == 0 else 1)
