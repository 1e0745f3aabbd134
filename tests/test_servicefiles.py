"""The generated launchd plist and systemd units, the packaging/ examples, and `timerd service`."""

from __future__ import annotations

import importlib.util
import os
import plistlib
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from click.testing import CliRunner

from timerd.cli import service_commands as cli_service
from timerd.cli import unit_files as sf

ROOT = Path(__file__).resolve().parent.parent
PACKAGING = ROOT / "packaging"
EXE = Path("/opt/timerd/bin/timerd")
DB = Path("/srv/data/timerd.db")
CONFIG = Path("/etc/timerd/timerd.toml")
HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    "UMask": "0077",
}


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """Parse a unit file into section -> key -> values (a key may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"key outside a section: {line}"
        key, sep, value = line.partition("=")
        assert sep, f"not a key=value line: {line}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def one(unit: dict[str, dict[str, list[str]]], section: str, key: str) -> str:
    """Return the single value of `key`, failing if it is missing or repeated."""
    values = unit[section][key]
    assert len(values) == 1, f"{key} set {len(values)} times"
    return values[0]


def seconds(value: str) -> int:
    """Turn a systemd time like `30s` into seconds."""
    assert value.endswith("s"), value
    return int(value[:-1])


# --- launchd ---------------------------------------------------------------------------------


def test_plist_has_what_launchd_needs() -> None:
    home = Path("/Users/ann")
    agent = plistlib.loads(sf.render_launchd_plist(EXE, DB, home=home).encode())
    assert agent["Label"] == "dev.timerd"
    assert agent["ProgramArguments"] == [str(EXE), "serve", "--db", str(DB)]
    assert agent["RunAtLoad"] is True
    assert agent["KeepAlive"] is True
    assert "UserName" not in agent
    assert "GroupName" not in agent
    assert agent["StandardOutPath"] == "/Users/ann/Library/Logs/timerd/timerd.out.log"
    assert agent["StandardErrorPath"] == "/Users/ann/Library/Logs/timerd/timerd.err.log"
    assert agent["Umask"] == 0o077
    assert agent["ExitTimeOut"] > sf.DEFAULT_GRACE_S


def test_plist_passes_config_and_keeps_spaces() -> None:
    db = Path("/Users/ann/Library/Application Support/timerd/timerd.db")
    text = sf.render_launchd_plist(EXE, db, CONFIG, home=Path("/Users/ann"))
    args = plistlib.loads(text.encode())["ProgramArguments"]
    assert args == [str(EXE), "serve", "--db", str(db), "--config", str(CONFIG)]


# --- systemd ---------------------------------------------------------------------------------


def test_system_unit_fields() -> None:
    unit = parse_unit(sf.render_systemd_system_unit(EXE, config=CONFIG))
    assert one(unit, "Service", "Type") == "notify"
    assert one(unit, "Service", "NotifyAccess") == "main"
    assert one(unit, "Service", "ExecStart") == (
        f"{EXE} serve --db /var/lib/timerd/timerd.db --config {CONFIG}"
    )
    assert one(unit, "Service", "User") == "timerd"
    assert one(unit, "Service", "DynamicUser") == "yes"
    assert one(unit, "Service", "StateDirectory") == "timerd"
    assert one(unit, "Service", "StateDirectoryMode") == "0700"
    assert one(unit, "Service", "Restart") == "on-failure"
    assert seconds(one(unit, "Service", "TimeoutStopSec")) > sf.DEFAULT_GRACE_S
    for key, value in HARDENING.items():
        assert one(unit, "Service", key) == value, key
    assert one(unit, "Service", "CapabilityBoundingSet") == ""
    assert one(unit, "Install", "WantedBy") == "multi-user.target"
    assert "network-online.target" in one(unit, "Unit", "After")


def test_user_unit_fields() -> None:
    unit = parse_unit(sf.render_systemd_user_unit(EXE, DB))
    assert one(unit, "Service", "Type") == "notify"
    assert one(unit, "Service", "NotifyAccess") == "main"
    assert one(unit, "Service", "ExecStart") == f"{EXE} serve --db {DB}"
    assert one(unit, "Service", "Restart") == "on-failure"
    assert one(unit, "Service", "UMask") == "0077"
    assert one(unit, "Service", "NoNewPrivileges") == "yes"
    assert "User" not in unit["Service"]
    assert one(unit, "Install", "WantedBy") == "default.target"


def test_stop_timeout_follows_grace() -> None:
    assert sf.stop_timeout_s(10) == 30
    unit = parse_unit(sf.render_systemd_user_unit(EXE, DB, grace_s=60.5))
    assert seconds(one(unit, "Service", "TimeoutStopSec")) == 81


@pytest.mark.parametrize(
    ("arg", "quoted"),
    [
        ("/srv/timerd.db", "/srv/timerd.db"),
        ("/srv/my data/t.db", '"/srv/my data/t.db"'),
        ("/srv/100%/t.db", "/srv/100%%/t.db"),
        ("/srv/$HOME/t.db", "/srv/$$HOME/t.db"),
        ('/srv/a"b\\c.db', '"/srv/a\\"b\\\\c.db"'),
        (";", '";"'),
    ],
)
def test_exec_start_quoting(arg: str, quoted: str) -> None:
    assert sf.systemd_quote(arg) == quoted


def test_bad_paths_are_refused() -> None:
    with pytest.raises(ValueError, match="must be absolute"):
        sf.render_systemd_user_unit(Path("timerd"), DB)
    with pytest.raises(ValueError, match="must be absolute"):
        sf.render_launchd_plist(EXE, Path("t.db"), home=Path("/Users/ann"))
    with pytest.raises(ValueError, match="line break"):
        sf.render_systemd_user_unit(EXE, Path("/srv/a\nb.db"))
    with pytest.raises(ValueError, match="/var/lib/timerd"):
        sf.render_systemd_system_unit(EXE, DB)


@pytest.fixture
def fake_exe(tmp_path: Path) -> Path:
    """An executable for systemd-analyze, which checks that ExecStart exists."""
    exe = tmp_path / "bin" / "timerd"
    exe.parent.mkdir()
    exe.write_text("#!/bin/sh\nexit 0\n")
    exe.chmod(0o755)
    return exe


def _verify(unit: Path, *extra: str, env: dict[str, str] | None = None) -> None:
    done = subprocess.run(
        ["systemd-analyze", *extra, "verify", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    # verify exits 0 on unknown keys and bad values and only warns, naming the file.
    ours = [line for line in done.stderr.splitlines() if unit.name in line or "timerd" in line]
    assert done.returncode == 0, done.stderr
    assert ours == []


needs_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)


@needs_analyze
def test_system_unit_passes_systemd_analyze(tmp_path: Path, fake_exe: Path) -> None:
    unit = tmp_path / "timerd.service"
    unit.write_text(sf.render_systemd_system_unit(fake_exe))
    _verify(unit)


@needs_analyze
def test_user_unit_passes_systemd_analyze(tmp_path: Path, fake_exe: Path) -> None:
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    unit = tmp_path / "user" / "timerd.service"
    unit.parent.mkdir()
    unit.write_text(sf.render_systemd_user_unit(fake_exe, tmp_path / "my data" / "t%.db"))
    _verify(unit, "--user", env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)})


# --- install paths ---------------------------------------------------------------------------


def test_install_paths() -> None:
    home = Path("/home/ann")
    assert sf.install_path("darwin", home=Path("/Users/ann"), env={}) == Path(
        "/Users/ann/Library/LaunchAgents/dev.timerd.plist"
    )
    assert sf.install_path("linux", home=home, env={}) == Path(
        "/home/ann/.config/systemd/user/timerd.service"
    )
    assert sf.install_path("linux", home=home, env={"XDG_CONFIG_HOME": "/x/cfg"}) == Path(
        "/x/cfg/systemd/user/timerd.service"
    )
    assert sf.install_path("linux", home=home, env={"XDG_CONFIG_HOME": "rel"}) == Path(
        "/home/ann/.config/systemd/user/timerd.service"
    )
    assert sf.install_path("linux", system=True, home=home, env={}) == Path(
        "/etc/systemd/system/timerd.service"
    )
    with pytest.raises(ValueError, match="--system is for Linux"):
        sf.install_path("darwin", system=True, home=home, env={})
    with pytest.raises(ValueError, match="win32"):
        sf.install_path("win32", home=home, env={})


# --- packaging/ ------------------------------------------------------------------------------


def _regenerate_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("regenerate", PACKAGING / "regenerate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_packaging_files_match_the_renderers() -> None:
    rendered: dict[str, str] = _regenerate_module().render_all()
    assert set(rendered) == {"dev.timerd.plist", "timerd.service", "timerd-user.service"}
    for name, text in rendered.items():
        on_disk = (PACKAGING / name).read_text(encoding="utf-8")
        assert on_disk == text, f"packaging/{name} is stale: run python packaging/regenerate.py"


# --- timerd service --------------------------------------------------------------------------


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point HOME and XDG folders at tmp_path; fake timerd, systemctl and launchctl on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    fake = '#!/bin/sh\necho "$(basename "$0") $*" >> "{log}"\nexit ${{FAKE_RC:-0}}\n'
    for name in ("timerd", "systemctl", "launchctl"):
        script = bin_dir / name
        script.write_text(fake.format(log=log))
        script.chmod(0o755)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("USER", "ann")
    for name in ("FAKE_RC", "TIMERD_DB", "TIMERD_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sys, "argv", ["pytest"])
    monkeypatch.setattr(cli_service, "_platform", lambda: "linux")
    return tmp_path


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def _calls(sandbox: Path) -> list[str]:
    log = sandbox / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def test_install_dry_run_prints_the_unit_and_writes_nothing(sandbox: Path) -> None:
    before = _files(sandbox)
    db = sandbox / "my timers.db"
    result = CliRunner().invoke(cli_service.service, ["install", "--dry-run", "--db", str(db)])
    assert result.exit_code == 0, result.output
    unit_path = sandbox / "config" / "systemd" / "user" / "timerd.service"
    exe = sandbox / "bin" / "timerd"
    assert f"would write: {unit_path}\n" in result.output
    assert f'ExecStart={exe} serve --db "{db}"\n' in result.output
    assert "Type=notify\n" in result.output
    assert "would run: systemctl --user daemon-reload\n" in result.output
    assert "would run: systemctl --user enable --now timerd.service\n" in result.output
    assert "note: to keep it running after you log out: loginctl enable-linger ann" in result.output
    assert _files(sandbox) == before
    assert _calls(sandbox) == []


def test_install_dry_run_defaults(sandbox: Path) -> None:
    config = sandbox / "timerd.toml"
    config.write_text("")
    result = CliRunner().invoke(
        cli_service.service, ["install", "--dry-run", "--config", str(config)]
    )
    assert result.exit_code == 0, result.output
    db = sandbox / "data" / "timerd" / "timerd.db"
    assert f"serve --db {db} --config {config}\n" in result.output


def test_install_uses_the_configured_db(sandbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    default_config = sandbox / "config" / "timerd" / "timerd.toml"
    default_config.parent.mkdir(parents=True)
    default_config.write_text('db = "/srv/from-default-config.db"\n')
    result = CliRunner().invoke(cli_service.service, ["install", "--dry-run"])
    assert "serve --db /srv/from-default-config.db\n" in result.output
    config = sandbox / "other.toml"
    config.write_text('db = "/srv/from-config.db"\n')
    monkeypatch.setenv("TIMERD_CONFIG", str(config))
    result = CliRunner().invoke(cli_service.service, ["install", "--dry-run"])
    assert f"serve --db /srv/from-config.db --config {config}\n" in result.output
    monkeypatch.setenv("TIMERD_DB", "/srv/from-env.db")
    result = CliRunner().invoke(cli_service.service, ["install", "--dry-run"])
    assert f"serve --db /srv/from-env.db --config {config}\n" in result.output
    config.write_text("db = [")
    result = CliRunner().invoke(cli_service.service, ["install", "--dry-run"])
    assert result.exit_code == 0, result.output
    monkeypatch.delenv("TIMERD_DB")
    result = CliRunner().invoke(cli_service.service, ["install", "--dry-run"])
    assert result.exit_code == 1
    assert result.output.startswith(f"timerd: error: cannot read config file {config}: ")


def test_install_uninstall_run_systemctl(sandbox: Path) -> None:
    runner = CliRunner()
    unit_path = sandbox / "config" / "systemd" / "user" / "timerd.service"
    result = runner.invoke(cli_service.service, ["install", "--db", str(sandbox / "a.db")])
    assert result.exit_code == 0, result.output
    exe = sandbox / "bin" / "timerd"
    assert unit_path.read_text() == sf.render_systemd_user_unit(exe, sandbox / "a.db")
    assert _calls(sandbox) == [
        "systemctl --user daemon-reload",
        "systemctl --user enable --now timerd.service",
    ]
    assert f"wrote: {unit_path}\n" in result.output
    assert "ran: systemctl --user enable --now timerd.service\n" in result.output

    # A changed definition restarts the running service.
    result = runner.invoke(cli_service.service, ["install", "--db", str(sandbox / "b.db")])
    assert result.exit_code == 0, result.output
    assert _calls(sandbox)[2:] == [
        "systemctl --user daemon-reload",
        "systemctl --user enable timerd.service",
        "systemctl --user restart timerd.service",
    ]

    result = runner.invoke(cli_service.service, ["uninstall"])
    assert result.exit_code == 0, result.output
    assert not unit_path.exists()
    assert _calls(sandbox)[5:] == [
        "systemctl --user disable --now timerd.service",
        "systemctl --user daemon-reload",
    ]
    result = runner.invoke(cli_service.service, ["uninstall"])
    assert result.exit_code == 0
    assert result.output == f"not installed: no {unit_path}\n"


def test_failing_command_is_one_clear_line(sandbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_RC", "1")
    result = CliRunner().invoke(cli_service.service, ["install"])
    assert result.exit_code == 1
    assert "timerd: error: `systemctl --user daemon-reload` failed (exit 1)" in result.output
    assert "Traceback" not in result.output


def test_status_reports_and_exits_by_state(sandbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = CliRunner().invoke(cli_service.service, ["status"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("not installed: no ")
    assert _calls(sandbox) == ["systemctl --user status --no-pager --lines=5 timerd.service"]
    monkeypatch.setenv("FAKE_RC", "3")
    assert CliRunner().invoke(cli_service.service, ["status"]).exit_code == 1


def test_launchd_install(sandbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_service, "_platform", lambda: "darwin")
    home = sandbox / "home"
    plist = home / "Library" / "LaunchAgents" / "dev.timerd.plist"
    dry = CliRunner().invoke(cli_service.service, ["install", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert f"would create: {home}/Library/Logs/timerd/\n" in dry.output
    assert f"would run: launchctl bootstrap gui/{os.getuid()} {plist}\n" in dry.output
    assert not plist.exists()

    result = CliRunner().invoke(cli_service.service, ["install", "--db", str(sandbox / "t.db")])
    assert result.exit_code == 0, result.output
    agent = plistlib.loads(plist.read_bytes())
    assert agent["ProgramArguments"][:2] == [str(sandbox / "bin" / "timerd"), "serve"]
    assert (home / "Library" / "Logs" / "timerd").is_dir()
    assert _calls(sandbox) == [f"launchctl bootstrap gui/{os.getuid()} {plist}"]

    result = CliRunner().invoke(cli_service.service, ["install", "--db", str(sandbox / "t.db")])
    assert result.exit_code == 0, result.output
    assert _calls(sandbox)[1] == f"launchctl bootout gui/{os.getuid()}/dev.timerd"

    result = CliRunner().invoke(cli_service.service, ["uninstall"])
    assert result.exit_code == 0, result.output
    assert not plist.exists()


def test_system_on_macos_is_refused(sandbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_service, "_platform", lambda: "darwin")
    result = CliRunner().invoke(cli_service.service, ["install", "--system", "--dry-run"])
    assert result.exit_code == 1
    assert "timerd: error: --system is for Linux" in result.output


def test_system_dry_run(sandbox: Path) -> None:
    result = CliRunner().invoke(cli_service.service, ["install", "--system", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "would write: /etc/systemd/system/timerd.service\n" in result.output
    assert "serve --db /var/lib/timerd/timerd.db\n" in result.output
    assert "would run: systemctl daemon-reload\n" in result.output
    assert "would run: systemctl enable --now timerd.service\n" in result.output
    assert "enable-linger" not in result.output


def test_system_refuses_a_db_outside_its_state_dir(sandbox: Path) -> None:
    args = ["install", "--system", "--dry-run", "--db", str(sandbox / "t.db")]
    result = CliRunner().invoke(cli_service.service, args)
    assert result.exit_code == 1
    assert "under /var/lib/timerd" in result.output


def test_system_refuses_paths_under_home() -> None:
    with pytest.raises(Exception, match="ProtectHome"):
        cli_service._check_system(True, True, [Path("/home/ann/.local/bin/timerd")])


def test_system_install_from_home_says_what_works_from_a_checkout(
    sandbox: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """timerd is not published, so `pipx install --global timerd` cannot work (issue 16.9)."""
    monkeypatch.setattr(cli_service, "find_executable", lambda: Path("/home/ann/.venv/bin/timerd"))
    result = CliRunner().invoke(cli_service.service, ["install", "--system", "--dry-run"])
    assert result.exit_code == 1
    line = result.output.strip()
    assert "\n" not in line
    assert "pipx install --global timerd" not in line
    assert "sudo python3 -m venv /opt/timerd && sudo /opt/timerd/bin/pip install ." in line
    assert "timerd-*.whl" in line


def test_find_executable(tmp_path: Path) -> None:
    ran = tmp_path / "timerd"
    ran.write_text("#!/bin/sh\n")
    ran.chmod(0o755)
    assert cli_service.find_executable(str(ran), lambda _: "/usr/bin/timerd") == ran
    assert cli_service.find_executable("pytest", lambda _: "/usr/bin/timerd") == Path(
        "/usr/bin/timerd"
    )
    with pytest.raises(Exception, match="cannot find the timerd executable"):
        cli_service.find_executable("pytest", lambda _: None)
