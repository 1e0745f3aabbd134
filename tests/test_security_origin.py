"""The Host (421) and Origin (403) rules: a web page can neither use timerd nor rebind to it.

DNS rebinding shows up at timerd as a request whose `Host` is the attacker's name; a page of
another origin shows up as its `Origin`. The app tests send those headers as a browser would
(aiohttp's client sends a given `Host` as is); one test does the same against a real
`timerd serve`.
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from tests.api_helpers import FAR_S, assert_problem, create, get_timer
from tests.procs import Daemon
from timerd.api.origin_guard import HostRule, split_authority
from timerd.config import Settings, load_settings
from timerd.daemon.checks import check_serve_settings
from timerd.errors import ConfigError

MakeApi = Callable[..., Awaitable[TestClient[Any, Any]]]
Client = TestClient[Any, Any]
TOKEN = "origin-test-token"
BODY = {"seconds": FAR_S, "url": "https://a.example/hook"}
EVIL = "https://evil.example"
TID = "AAAAAAAAAAAAAAAAAAAAAA"


def _own(client: Client) -> str:
    """Return the `host:port` the test client talks to (what a browser puts in Host)."""
    return f"{client.host}:{client.port}"


async def _count(client: Client) -> int:
    resp = await client.get("/timers", params={"limit": 1000})
    assert resp.status == 200, await resp.text()
    return len((await resp.json())["timers"])


# Host ---------------------------------------------------------------------------------------


async def test_a_rebound_host_can_neither_create_nor_read(api: Client) -> None:
    """The issue's probe: Host attacker.example:8000 with that page's own Origin."""
    rebound = {"Host": "attacker.example:8000", "Origin": "http://attacker.example:8000"}
    resp = await api.post("/timers", json=BODY, headers=rebound)
    problem = await assert_problem(resp, 421)
    assert problem["type"] == "urn:timerd:problem:misdirected-request"
    assert "allowed_hosts" in problem["detail"]
    await assert_problem(await api.get("/timers", headers=rebound), 421)
    await assert_problem(await api.get("/timers", headers={"Host": "attacker.example"}), 421)
    assert await _count(api) == 0


@pytest.mark.parametrize(
    "method_path",
    [
        ("GET", "/timers"),
        ("GET", f"/timers/{TID}"),
        ("DELETE", f"/timers/{TID}"),
        ("PATCH", f"/timers/{TID}"),
        ("POST", f"/timers/{TID}/fire"),
        ("GET", f"/timers/{TID}/attempts"),
        ("POST", "/timers/batch"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
        ("GET", "/"),
        ("GET", "/ui"),
        ("GET", "/docs"),
        ("GET", "/ui/static/common.js"),
        ("GET", "/ui/summary.json"),
        ("GET", "/no-such-path"),
    ],
)
async def test_every_path_but_healthz_checks_the_host(
    api: Client, method_path: tuple[str, str]
) -> None:
    method, path = method_path
    resp = await api.request(method, path, json=BODY, headers={"Host": "rebind.example:80"})
    await assert_problem(resp, 421)


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "127.0.0.1:8000",
        "127.200.3.4:1",
        "localhost",
        "LocalHost:8000",
        "localhost.:8000",
        "[::1]",
        "[::1]:8000",
        "[::ffff:127.0.0.1]:8000",
    ],
)
async def test_loopback_hosts_pass_on_any_port(api: Client, host: str) -> None:
    assert (await api.get("/timers", headers={"Host": host})).status == 200


@pytest.mark.parametrize(
    "host",
    [
        "attacker.example",
        "localhost.attacker.example",
        "127.0.0.1.nip.io",
        "0.0.0.0:8000",
        "10.1.2.3",
        "[::2]",
        "::1",
        "[::1",
        "localhost:port",
        "localhost:99999",
        "",
        "a b",
    ],
)
async def test_other_hosts_are_421(api: Client, host: str) -> None:
    await assert_problem(await api.get("/timers", headers={"Host": host}), 421)


async def test_healthz_answers_any_host_and_origin(api: Client) -> None:
    headers = {"Host": "attacker.example", "Origin": EVIL}
    assert (await api.get("/healthz", headers=headers)).status == 200


async def test_allowed_hosts_match_names_and_patterns_on_any_port(make_api: MakeApi) -> None:
    client = await make_api(allowed_hosts=("timerd.lan", "*.corp.example", "[fd00::5]"))
    for host in ("timerd.lan", "TIMERD.LAN.:9999", "api.corp.example:8000", "[fd00::5]:1"):
        assert (await client.get("/timers", headers={"Host": host})).status == 200, host
    for host in ("corp.example", "timerd.lan.evil.example", "[fd00::6]"):
        await assert_problem(await client.get("/timers", headers={"Host": host}), 421)


async def test_the_listen_address_passes(make_api: MakeApi) -> None:
    client = await make_api(host="timerd.internal", insecure=True)
    assert (await client.get("/timers", headers={"Host": "timerd.internal:8000"})).status == 200
    await assert_problem(await client.get("/timers", headers={"Host": "other.internal"}), 421)


async def test_with_a_token_the_host_rule_is_off_but_the_token_is_not(
    make_api: MakeApi,
) -> None:
    client = await make_api(token=TOKEN)
    rebound = {"Host": "attacker.example:8000"}
    await assert_problem(await client.get("/timers", headers=rebound), 401)
    authed = {**rebound, "Authorization": f"Bearer {TOKEN}"}
    assert (await client.get("/timers", headers=authed)).status == 200


# Origin -------------------------------------------------------------------------------------


async def test_a_cross_site_page_cannot_create(api: Client) -> None:
    resp = await api.post("/timers", json=BODY, headers={"Origin": EVIL})
    problem = await assert_problem(resp, 403)
    assert problem["type"] == "urn:timerd:problem:forbidden-origin"
    assert "evil.example" in problem["detail"]
    assert await _count(api) == 0


async def test_a_cross_site_text_plain_fire_is_refused(api: Client) -> None:
    """A simple (no preflight) POST a page can send to 127.0.0.1 without asking."""
    tid = await create(api, **BODY)
    resp = await api.post(
        f"/timers/{tid}/fire",
        data=b"x",
        headers={"Origin": EVIL, "Content-Type": "text/plain"},
    )
    await assert_problem(resp, 403)
    assert (await get_timer(api, tid))["status"] == "pending"


@pytest.mark.parametrize(
    "method_path",
    [
        ("GET", "/timers"),
        ("GET", f"/timers/{TID}"),
        ("DELETE", f"/timers/{TID}"),
        ("PATCH", f"/timers/{TID}"),
        ("POST", "/timers/batch"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
        ("GET", "/ui"),
        ("GET", "/docs"),
        ("GET", "/ui/static/status.js"),
        ("GET", "/ui/summary.json"),
    ],
)
async def test_a_cross_site_page_can_neither_change_nor_read(
    api: Client, method_path: tuple[str, str]
) -> None:
    method, path = method_path
    await assert_problem(await api.request(method, path, json=BODY, headers={"Origin": EVIL}), 403)


@pytest.mark.parametrize(
    "origin",
    [
        "null",
        "http://localhost:3000",  # another local app is not timerd
        "http://127.0.0.1",
        "https://127.0.0.1.evil.example",
        "file://",
        "chrome-extension://abcdef",
        "http://127.0.0.1:8000/path",
        "http://user@127.0.0.1:8000",
        "not an origin",
        "",
    ],
)
async def test_origins_that_are_not_timerd_itself_are_403(api: Client, origin: str) -> None:
    resp = await api.post("/timers", json=BODY, headers={"Origin": origin})
    await assert_problem(resp, 403)


async def test_the_pages_own_origin_passes(api: Client) -> None:
    """The status and docs pages call the API from the origin they were loaded from."""
    own = _own(api)
    for origin, host in (
        (f"http://{own}", own),
        (f"http://localhost:{api.port}", f"localhost:{api.port}"),
        (f"HTTP://LOCALHOST:{api.port}", f"localhost:{api.port}"),
        ("https://localhost", "localhost:443"),
        ("http://[::1]:8000", "[::1]:8000"),
    ):
        resp = await api.post("/timers", json=BODY, headers={"Origin": origin, "Host": host})
        assert resp.status == 201, (origin, host, await resp.text())


async def test_an_allowed_host_origin_passes_behind_a_proxy(make_api: MakeApi) -> None:
    """A TLS proxy forwards `Host: 127.0.0.1:...`; the page's origin is the public name."""
    client = await make_api(allowed_hosts=("timerd.example",))
    resp = await client.post("/timers", json=BODY, headers={"Origin": "https://timerd.example"})
    assert resp.status == 201, await resp.text()
    resp = await client.post("/timers", json=BODY, headers={"Origin": EVIL})
    await assert_problem(resp, 403)


async def test_with_a_token_a_cross_site_origin_is_still_403(make_api: MakeApi) -> None:
    client = await make_api(token=TOKEN)
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    resp = await client.post("/timers", json=BODY, headers={**bearer, "Origin": EVIL})
    await assert_problem(resp, 403)
    # a token deployment reached by any name keeps its status page: same origin as Host
    page = {**bearer, "Host": "timerd.lan:8000", "Origin": "http://timerd.lan:8000"}
    assert (await client.post("/timers", json=BODY, headers=page)).status == 201


# settings -----------------------------------------------------------------------------------


def test_allowed_hosts_entries_are_names_without_ports(tmp_path: Path) -> None:
    rule = HostRule(allowed_hosts=("Timerd.LAN.", "::1", "[fd00::5]", "*.corp.example"))
    assert rule.allowed_hosts == ("timerd.lan", "::1", "fd00::5", "*.corp.example")
    for bad in ("timerd.lan:8000", "[fd00::5]:80", "[fd00::5", "http://timerd.lan", ""):
        with pytest.raises(ConfigError, match="allowed_hosts"):
            HostRule(allowed_hosts=(bad,))
    with pytest.raises(ConfigError, match="any port matches"):
        check_serve_settings(Settings(db=tmp_path / "t.db", allowed_hosts=("a.example:80",)))
    settings = load_settings(env={"TIMERD_ALLOWED_HOSTS": "a.example, *.b.example"})
    assert settings.allowed_hosts == ("a.example", "*.b.example")


def test_split_authority() -> None:
    assert split_authority("Example.COM.:8080") == ("example.com", 8080)
    assert split_authority("[::1]") == ("::1", None)
    assert split_authority("xn--bcher-kva.example") == ("xn--bcher-kva.example", None)
    assert split_authority("b\u00fccher.example:1") == ("xn--bcher-kva.example", 1)
    for bad in ("", ":80", "::1", "[::1]x", "[nope]", "a:b", "a:-1", "a:70000"):
        with pytest.raises(ValueError):  # noqa: PT011 - each is a different message
            split_authority(bad)


# a real daemon ------------------------------------------------------------------------------


def _lan_address() -> str | None:
    """Return this machine's address on its default route, or None (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))
        except OSError:
            return None
        address: str = probe.getsockname()[0]
    return None if address.startswith("127.") else address


@pytest.mark.e2e
async def test_a_real_daemon_refuses_rebinding_and_other_origins(tmp_path: Path) -> None:
    async with (
        Daemon(tmp_path / "t.db", env={"TIMERD_ALLOWED_HOSTS": "timerd.test"}) as daemon,
        aiohttp.ClientSession() as http,
    ):
        rebound = {"Host": "attacker.example:8000", "Origin": "http://attacker.example:8000"}
        async with http.post(f"{daemon.url}/timers", json=BODY, headers=rebound) as resp:
            assert resp.status == 421
            assert resp.content_type == "application/problem+json"
        async with http.get(f"{daemon.url}/timers", headers=rebound) as resp:
            assert resp.status == 421
        named = {"Host": "timerd.test:8000"}
        async with http.post(f"{daemon.url}/timers", json=BODY, headers=named) as resp:
            assert resp.status == 201
        async with http.post(
            f"{daemon.url}/timers", json=BODY, headers={**named, "Origin": EVIL}
        ) as resp:
            assert resp.status == 403
        async with http.get(f"{daemon.url}/healthz", headers=rebound) as resp:
            assert resp.status == 200


@pytest.mark.e2e
async def test_a_daemon_on_all_addresses_answers_the_address_it_was_reached_on(
    tmp_path: Path,
) -> None:
    lan = _lan_address()
    if lan is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    async with (
        Daemon(tmp_path / "t.db", "--host", "0.0.0.0", "--insecure") as daemon,
        aiohttp.ClientSession() as http,
    ):
        port = daemon.url.rsplit(":", 1)[1]
        async with http.get(f"http://{lan}:{port}/timers") as resp:
            assert resp.status == 200, await resp.text()
        async with http.get(f"http://{lan}:{port}/timers", headers={"Host": "0.0.0.0"}) as resp:
            assert resp.status == 421
        async with http.get(
            f"http://{lan}:{port}/timers", headers={"Host": "attacker.example"}
        ) as resp:
            assert resp.status == 421
