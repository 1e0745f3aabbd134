"""The API token: 401 without it, /healthz open, the CLI sends it, and it never leaks."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from click.testing import CliRunner

from tests.conftest import make_settings
from timerd.api.auth import token_matches
from timerd.cli.group import cli
from timerd.config import Settings, load_settings, read_token
from timerd.daemon.app import build_app
from timerd.daemon.checks import check_serve_settings
from timerd.errors import ConfigError

TOKEN = "s3cr3t-token-do-not-leak"
MakeApi = Callable[..., Awaitable[TestClient[Any, Any]]]


def _bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def authed(make_api: MakeApi) -> TestClient[Any, Any]:
    return await make_api(token=TOKEN)


ROUTES = [
    ("POST", "/timers"),
    ("POST", "/timers/batch"),
    ("GET", "/timers"),
    ("GET", "/timers/AAAAAAAAAAAAAAAAAAAAAA"),
    ("PATCH", "/timers/AAAAAAAAAAAAAAAAAAAAAA"),
    ("DELETE", "/timers/AAAAAAAAAAAAAAAAAAAAAA"),
    ("POST", "/timers/AAAAAAAAAAAAAAAAAAAAAA/fire"),
    ("GET", "/timers/AAAAAAAAAAAAAAAAAAAAAA/attempts"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("GET", "/ui/summary.json"),
    ("GET", "/no-such-path"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_every_route_but_healthz_needs_the_token(
    authed: TestClient[Any, Any], method: str, path: str
) -> None:
    resp = await authed.request(method, path, json={"seconds": 1, "url": "https://a.example/"})
    assert resp.status == 401
    assert resp.content_type == "application/problem+json"
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    problem = await resp.json()
    assert problem["status"] == 401
    assert problem["type"] == "urn:timerd:problem:unauthorized"


@pytest.mark.parametrize(
    "header",
    [
        f"Bearer {TOKEN}x",
        f"Bearer {TOKEN[:-1]}",
        "Bearer ",
        f"Basic {TOKEN}",
        TOKEN,
        f"Bearer {TOKEN.upper()}",
        "Bearer \u00e9t\u00e9",
    ],
)
async def test_a_wrong_token_is_401_and_not_echoed(
    authed: TestClient[Any, Any], header: str
) -> None:
    resp = await authed.get("/timers", headers={"Authorization": header})
    assert resp.status == 401
    assert 'error="invalid_token"' in resp.headers["WWW-Authenticate"]
    assert TOKEN not in await resp.text()


async def test_the_right_token_passes(authed: TestClient[Any, Any]) -> None:
    resp = await authed.post(
        "/timers", json={"minutes": 5, "url": "https://a.example/h"}, headers=_bearer()
    )
    assert resp.status == 201
    tid = (await resp.json())["id"]
    resp = await authed.get(f"/timers/{tid}", headers={"Authorization": f"bearer  {TOKEN} "})
    assert resp.status == 200


async def test_healthz_is_open(authed: TestClient[Any, Any]) -> None:
    resp = await authed.get("/healthz")
    assert resp.status == 200


async def test_the_status_page_shell_is_open_but_its_data_is_not(
    authed: TestClient[Any, Any],
) -> None:
    # the HTML holds no data; the page sends the token on its own API calls
    assert (await authed.get("/")).status == 200
    assert (await authed.get("/ui/summary.json")).status == 401


async def test_no_token_means_no_auth(api: TestClient[Any, Any]) -> None:
    assert (await api.get("/timers")).status == 200


async def test_token_file_is_read(make_api: MakeApi, tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    client = await make_api(token_file=str(path))
    assert (await client.get("/timers")).status == 401
    assert (await client.get("/timers", headers=_bearer())).status == 200


def test_read_token_precedence_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("from-file\nsecond line ignored\n")
    assert read_token(Settings(token_file=str(path))) == "from-file"
    assert read_token(Settings(token="direct", token_file=str(path))) == "direct"
    assert read_token(Settings()) == ""
    with pytest.raises(ConfigError, match="cannot read"):
        read_token(Settings(token_file=str(tmp_path / "missing")))
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        read_token(Settings(token_file=str(tmp_path / "empty")))


def test_token_from_env_through_settings(tmp_path: Path) -> None:
    settings = load_settings(env={"TIMERD_TOKEN": TOKEN})
    assert settings.token == TOKEN
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'token = "{TOKEN}"\n')
    assert load_settings(config_file=cfg, env={}).token == TOKEN


def test_token_matches_is_strict() -> None:
    assert token_matches(f"Bearer {TOKEN}", TOKEN)
    assert token_matches(f"BEARER {TOKEN}", TOKEN)
    assert not token_matches(None, TOKEN)
    assert not token_matches("", TOKEN)
    assert not token_matches(f"Token {TOKEN}", TOKEN)


# never leaks --------------------------------------------------------------------------------


def test_token_and_secret_are_not_in_repr() -> None:
    settings = Settings(token=TOKEN, signing_secret="whsec_" + "QUJD" * 8)
    assert TOKEN not in repr(settings)
    assert "QUJD" not in repr(settings)
    assert "token_file=" in repr(settings)


def test_a_bad_secret_value_is_not_echoed_in_config_errors(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("token = 123456789\n")
    with pytest.raises(ConfigError) as info:
        load_settings(config_file=cfg, env={})
    assert "123456789" not in str(info.value)


async def test_token_is_not_in_metrics_or_logs(
    authed: TestClient[Any, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await authed.get("/timers", headers=_bearer(TOKEN + "wrong"))
    await authed.post("/timers", json={"seconds": 0, "url": "http://127.0.0.1:9/h"})
    resp = await authed.get("/metrics", headers=_bearer())
    assert resp.status == 200
    assert TOKEN not in await resp.text()
    assert TOKEN not in caplog.text


# refusing to listen publicly ----------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "example.com"])
def test_non_loopback_without_token_is_refused(host: str) -> None:
    with pytest.raises(ConfigError, match=f"refusing to listen on {host} without an API token"):
        check_serve_settings(Settings(host=host))


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_needs_no_token(host: str) -> None:
    check_serve_settings(Settings(host=host))


def test_token_or_insecure_allows_a_public_host(tmp_path: Path) -> None:
    check_serve_settings(Settings(host="0.0.0.0", token=TOKEN))
    check_serve_settings(Settings(host="0.0.0.0", insecure=True))
    path = tmp_path / "token"
    path.write_text(TOKEN)
    check_serve_settings(Settings(host="0.0.0.0", token_file=str(path)))


def _serve(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TIMERD_")}
    clean["TIMERD_CONFIG"] = str(tmp_path / "none.toml")
    (tmp_path / "none.toml").write_text("")
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "timerd",
            "serve",
            "--port",
            "0",
            "--db",
            str(tmp_path / "t"),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, **env},
        check=False,
    )


def test_serve_on_a_public_address_without_token_exits_2(tmp_path: Path) -> None:
    done = _serve(tmp_path, "--host", "0.0.0.0")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "refusing to listen on 0.0.0.0 without an API token" in lines[0]
    assert "--insecure" in lines[0]
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "t").exists()  # refused before touching anything


def test_serve_with_a_bad_signing_secret_exits_2(tmp_path: Path) -> None:
    done = _serve(tmp_path, TIMERD_SIGNING_SECRET="whsec_not*base64!")
    assert done.returncode == 2
    assert "signing_secret" in done.stderr
    assert "not*base64" not in done.stderr


# the CLI sends the token ---------------------------------------------------------------------


@pytest.fixture
async def live_server(aiohttp_server: Callable[..., Awaitable[TestServer]], tmp_path: Path) -> str:
    server = await aiohttp_server(build_app(make_settings(tmp_path, token=TOKEN)), host="127.0.0.1")
    return str(server.make_url("")).rstrip("/")


async def _cli(args: list[str], env: dict[str, str]) -> Any:
    runner = CliRunner()
    return await asyncio.to_thread(runner.invoke, cli, args, env=env)


async def test_cli_sends_the_token_from_env(live_server: str, tmp_path: Path) -> None:
    env = {"TIMERD_CONFIG": str(tmp_path / "absent.toml"), "TIMERD_TOKEN": TOKEN}
    (tmp_path / "absent.toml").write_text("")
    added = await _cli(["add", "https://a.example/h", "--in", "1h", "--addr", live_server], env)
    assert added.exit_code == 0, added.output
    listed = await _cli(["list", "--json", "--addr", live_server], env)
    assert listed.exit_code == 0, listed.output
    assert added.stdout.strip() in listed.output  # stderr says when it is due (SPEC)


async def test_cli_reads_the_token_from_the_config_file(live_server: str, tmp_path: Path) -> None:
    token_path = tmp_path / "token"
    token_path.write_text(TOKEN)
    cfg = tmp_path / "timerd.toml"
    cfg.write_text(f'token_file = "{token_path}"\n')
    result = await _cli(["list", "--addr", live_server], {"TIMERD_CONFIG": str(cfg)})
    assert result.exit_code == 0, result.output


async def test_cli_without_the_token_fails_in_one_line(live_server: str, tmp_path: Path) -> None:
    (tmp_path / "empty.toml").write_text("")
    env = {"TIMERD_CONFIG": str(tmp_path / "empty.toml"), "TIMERD_TOKEN": ""}
    result = await _cli(["list", "--addr", live_server], env)
    assert result.exit_code == 1
    assert "API token" in result.output
    assert len(result.output.strip().splitlines()) == 1
