"""Settings precedence, validation, and the docs that must name every setting."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from timerd.config import Settings, env_name, load_settings, setting_fields
from timerd.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def test_defaults(tmp_path: Path) -> None:
    s = load_settings(env={})
    assert (s.host, s.port) == ("127.0.0.1", 8000)
    assert s.db.name == "timerd.db"
    assert s.max_delay_s >= 10 * 365 * 86400
    assert s.synchronous == "full"


def test_precedence_file_then_env_then_flags(tmp_path: Path) -> None:
    cfg = tmp_path / "timerd.toml"
    cfg.write_text('port = 9001\nhost = "0.0.0.0"\ngrace_s = 3\nmax_attempts = 4\n')
    env = {"TIMERD_PORT": "9002", "TIMERD_GRACE_S": "4.5"}
    s = load_settings(config_file=cfg, env=env, overrides={"port": 9003, "grace_s": None})
    assert s.port == 9003  # flag beats env beats file
    assert s.grace_s == 4.5  # env beats file; an unset flag does not count
    assert s.host == "0.0.0.0"  # file beats default
    assert s.max_attempts == 4


def test_config_file_from_env(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("port = 7000\n")
    assert load_settings(env={"TIMERD_CONFIG": str(cfg)}).port == 7000


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TIMERD_PORT": "abc"}, "TIMERD_PORT: expected an integer"),
        ({"TIMERD_PORT": "70000"}, "at most 65535"),
        ({"TIMERD_GRACE_S": "nan"}, "expected a number"),
        ({"TIMERD_SYNCHRONOUS": "sometimes"}, "must be one of"),
        ({"TIMERD_MAX_ATTEMPTS": "0"}, "at least 1"),
    ],
)
def test_bad_env_values_are_one_clear_line(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        load_settings(env=env)
    assert "\n" not in str(info.value)


def test_bad_config_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("port = [\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(config_file=bad, env={})
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("prot = 1\n")
    with pytest.raises(ConfigError, match="unknown setting 'prot'"):
        load_settings(config_file=unknown, env={})
    wrong = tmp_path / "wrong.toml"
    wrong.write_text('port = "eighty"\n')
    with pytest.raises(ConfigError, match="port"):
        load_settings(config_file=wrong, env={})
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(config_file=tmp_path / "missing.toml", env={})


def test_example_config_lists_every_setting_with_its_default() -> None:
    text = (ROOT / "timerd.toml.example").read_text()
    defaults = Settings()
    for f in setting_fields():
        match = re.search(rf"^#?\s*{f.name}\s*=\s*(.+)$", text, re.MULTILINE)
        assert match, f"timerd.toml.example lacks {f.name}"
        expected = getattr(defaults, f.name)
        if isinstance(expected, bool | tuple):  # TOML literals: false, ["a", "b"]
            value = tomllib.loads(f"v = {match.group(1)}")["v"]
            assert value == (list(expected) if isinstance(expected, tuple) else expected)
        elif f.name != "db":
            value = match.group(1).strip().strip('"')
            assert type(expected)(value) == expected, f"{f.name}: {value} != {expected}"


def test_example_config_parses_as_settings(tmp_path: Path) -> None:
    text = (ROOT / "timerd.toml.example").read_text()
    uncommented = re.sub(r"^#\s*(\w+\s*=)", r"\1", text, flags=re.MULTILINE)
    uncommented = re.sub(r"^db\s*=.*$", "", uncommented, flags=re.MULTILINE)
    cfg = tmp_path / "all.toml"
    cfg.write_text(uncommented)
    assert load_settings(config_file=cfg, env={}) == load_settings(env={})


def test_readme_mentions_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    for f in setting_fields():
        assert f"`{f.name}`" in readme, f"README lacks {f.name}"
    assert env_name("grace_s") == "TIMERD_GRACE_S"
