"""The outbound (SSRF) policy: unit rules, 422 at create time, and the connect-time check.

The rebinding tests use a fake DNS resolver: a host name answers an allowed address first and
a forbidden one next. No test connects anywhere but 127.0.0.1.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.test_utils import TestClient

from tests.api_helpers import wait_status
from tests.conftest import Receiver, make_settings
from timerd.config import Settings
from timerd.daemon.app import build_app
from timerd.delivery.deliverer import Deliverer, DeliveryPolicy
from timerd.delivery.outbound import (
    OutboundBlocked,
    OutboundPolicy,
    PolicyResolver,
    carried_ipv4,
)
from timerd.delivery.webhook_client import WebhookClient
from timerd.errors import ConfigError
from timerd.hostnames import resolver_name
from timerd.models import Timer

AiohttpClient = Callable[..., Awaitable[TestClient[Any, Any]]]
MakeApi = Callable[..., Awaitable[TestClient[Any, Any]]]

LOCAL = OutboundPolicy.from_settings(Settings(host="127.0.0.1"))
PUBLIC = OutboundPolicy.from_settings(Settings(host="0.0.0.0"))


# the rules ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "169.254.169.254",
        "169.254.0.1",
        "fe80::1",
        "100.100.100.200",
        "fd00:ec2::254",
        "0.0.0.0",
        "::",
        "::ffff:169.254.169.254",
        "::ffff:a9fe:a9fe",
        "224.0.0.1",
        "255.255.255.255",
        "metadata.google.internal",
        "METADATA.google.internal.",
    ],
)
def test_metadata_and_link_local_are_denied_by_default_everywhere(host: str) -> None:
    for policy in (LOCAL, PUBLIC):
        reason = policy.check_host(host)
        assert reason is not None, host
        assert "deny_networks" in reason or "deny_hosts" in reason


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "127.9.9.9",
        "::1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "100.64.0.1",
        "fd12:3456::1",
        "::ffff:127.0.0.1",
        "localhost",
        "api.localhost",
    ],
)
def test_loopback_and_private_follow_the_bind_address(host: str) -> None:
    assert LOCAL.check_host(host) is None
    reason = PUBLIC.check_host(host)
    assert reason is not None
    assert "non-loopback" in reason


@pytest.mark.parametrize("host", ["93.184.216.34", "2606:4700::1111", "example.com", "10.example"])
def test_public_addresses_and_names_pass_at_create_time(host: str) -> None:
    assert LOCAL.check_host(host) is None
    assert PUBLIC.check_host(host) is None


@pytest.mark.parametrize("host", ["127.1", "2130706433", "0x7f000001", "0177.0.0.1", "0xa9fea9fe"])
def test_legacy_numeric_ipv4_forms_are_refused(host: str) -> None:
    reason = LOCAL.check_host(host)
    assert reason is not None
    assert "legacy numeric form" in reason


def test_explicit_rules_longest_prefix_wins() -> None:
    policy = OutboundPolicy.from_settings(
        Settings(
            host="0.0.0.0",
            allow_networks=("10.0.0.0/8", "169.254.169.123/32"),
            deny_networks=("10.9.0.0/16", "169.254.0.0/16", "0.0.0.0/0"),
        )
    )
    assert policy.check_host("10.1.1.1") is None  # allow /8 beats deny /0
    assert policy.check_host("10.9.1.1") is not None  # deny /16 beats allow /8
    assert policy.check_host("169.254.169.123") is None  # an explicit /32 beats the /16
    assert policy.check_host("169.254.169.254") is not None
    assert policy.check_host("93.184.216.34") is not None  # deny 0.0.0.0/0: allowlist mode
    assert policy.check_host("192.168.1.1") is not None


def test_a_tie_is_a_deny() -> None:
    policy = OutboundPolicy.from_settings(
        Settings(allow_networks=("10.0.0.0/8",), deny_networks=("10.0.0.0/8",))
    )
    assert policy.check_host("10.0.0.1") is not None


def test_host_patterns_most_specific_wins() -> None:
    policy = OutboundPolicy.from_settings(
        Settings(
            host="0.0.0.0",
            allow_hosts=("*.corp.example", "hooks.example.com"),
            deny_hosts=("*", "bad.corp.example"),
        )
    )
    assert policy.check_host("api.corp.example") is None
    assert policy.check_host("hooks.example.com") is None
    assert policy.check_host("bad.corp.example") is not None
    assert policy.check_host("other.example.com") is not None
    assert policy.check_host("93.184.216.34") is not None  # "*" matches literals too


def test_an_allowed_host_may_resolve_to_a_private_address_but_never_to_a_denied_one() -> None:
    policy = OutboundPolicy.from_settings(Settings(host="0.0.0.0", allow_hosts=("*.internal",)))
    assert policy.check_address("svc.internal", "10.0.0.7") is None
    assert policy.check_address("svc.example", "10.0.0.7") is not None
    assert policy.check_address("svc.internal", "169.254.169.254") is not None


def test_malformed_networks_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="allow_networks: 'ten' is not a network"):
        OutboundPolicy.from_settings(Settings(allow_networks=("ten",)))


def test_list_settings_from_env_and_toml(tmp_path: Path) -> None:
    from timerd.config import load_settings

    s = load_settings(env={"TIMERD_ALLOW_NETWORKS": "10.0.0.0/8, 192.168.0.0/16,"})
    assert s.allow_networks == ("10.0.0.0/8", "192.168.0.0/16")
    cfg = tmp_path / "c.toml"
    cfg.write_text('deny_hosts = ["*.evil.example"]\ninsecure = true\n')
    s = load_settings(config_file=cfg, env={})
    assert s.deny_hosts == ("*.evil.example",)
    assert s.insecure is True
    cfg.write_text("deny_hosts = [1, 2]\n")
    with pytest.raises(ConfigError, match="deny_hosts: expected a list of strings"):
        load_settings(config_file=cfg, env={})


# create time: 422 --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data",
        "http://[fd00:ec2::254]/latest",
        "http://100.100.100.200/latest/meta-data",
        "http://metadata.google.internal/computeMetadata/v1",
        "http://[::ffff:169.254.169.254]/",
        "http://0.0.0.0:8000/",
        "http://127.1/",
    ],
)
async def test_create_with_a_forbidden_literal_is_422(api: TestClient[Any, Any], url: str) -> None:
    resp = await api.post("/timers", json={"seconds": 1, "url": url})
    assert resp.status == 422
    problem = await resp.json()
    assert [e["field"] for e in problem["errors"]] == ["url"]
    assert "outbound policy" in problem["errors"][0]["message"]


async def test_batch_and_patch_check_the_policy_too(api: TestClient[Any, Any]) -> None:
    good = {"seconds": 60, "url": "https://a.example/h"}
    bad = {"seconds": 60, "url": "http://169.254.169.254/"}
    resp = await api.post("/timers/batch", json={"timers": [good, bad]})
    assert resp.status == 422
    assert (await resp.json())["errors"][0]["field"] == "timers[1].url"
    tid = (await (await api.post("/timers", json=good)).json())["id"]
    resp = await api.patch(f"/timers/{tid}", json={"url": "http://[fe80::1]/"})
    assert resp.status == 422


async def test_public_bind_refuses_private_literals(make_api: MakeApi) -> None:
    client = await make_api(host="0.0.0.0", insecure=True)
    for url in ("http://127.0.0.1:8000/h", "http://10.0.0.1/h", "http://localhost/h"):
        resp = await client.post("/timers", json={"seconds": 1, "url": url})
        assert resp.status == 422, url
        assert "non-loopback" in (await resp.json())["detail"]
    resp = await client.post("/timers", json={"seconds": 1, "url": "https://a.example/h"})
    assert resp.status == 201


async def test_public_bind_with_an_allowed_network(make_api: MakeApi) -> None:
    client = await make_api(host="0.0.0.0", insecure=True, allow_networks=("10.0.0.0/8",))
    resp = await client.post("/timers", json={"seconds": 60, "url": "http://10.0.0.1/h"})
    assert resp.status == 201


# connect time: the resolver ----------------------------------------------------------------


class FlipResolver(AbstractResolver):
    """Answers each lookup with the next address of a script (the last one repeats)."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, int]] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.calls.append((host, port))
        address = self.answers[min(len(self.calls), len(self.answers)) - 1]
        fam = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [ResolveResult(hostname=host, host=address, port=port, family=fam, proto=0, flags=0)]

    async def close(self) -> None:
        pass


@pytest.mark.parametrize("second", ["127.0.0.1", "169.254.169.254", "10.0.0.5", "::1"])
async def test_resolver_blocks_a_rebinding_second_answer(second: str) -> None:
    resolver = PolicyResolver(PUBLIC, FlipResolver("93.184.216.34", second))
    first = await resolver.resolve("rebind.example", 443)
    assert [r["host"] for r in first] == ["93.184.216.34"]
    with pytest.raises(OutboundBlocked, match=f"rebind.example resolved to {second}"):
        await resolver.resolve("rebind.example", 443)


async def test_resolver_keeps_only_allowed_addresses() -> None:
    class Both(FlipResolver):
        async def resolve(
            self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
        ) -> list[ResolveResult]:
            good, bad = await super().resolve(host, port), await super().resolve(host, port)
            return [*bad, *good]

    resolver = PolicyResolver(PUBLIC, Both("93.184.216.34", "169.254.169.254"))
    kept = await resolver.resolve("mixed.example", 80)
    assert [r["host"] for r in kept] == ["93.184.216.34"]


def _public_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """A daemon bound publicly, where only 127.0.0.1 (the test receiver) stands in for
    "the public internet": every other loopback, private and metadata address is denied."""
    return make_settings(
        tmp_path,
        host="0.0.0.0",
        insecure=True,
        allow_networks=("127.0.0.1/32",),
        max_attempts=5,
        **overrides,
    )


async def _wait_final(client: TestClient[Any, Any], tid: str) -> dict[str, Any]:
    return await wait_status(client, tid, "fired", "failed")


@pytest.mark.parametrize("rebound", ["169.254.169.254", "127.0.0.2", "10.0.0.5"])
async def test_dns_rebinding_is_failed_at_once(
    aiohttp_client: AiohttpClient, tmp_path: Path, receiver: Receiver, rebound: str
) -> None:
    resolver = FlipResolver("127.0.0.1", rebound)
    client = await aiohttp_client(build_app(_public_settings(tmp_path), resolver=resolver))
    port = int(receiver.url.split(":")[2].split("/")[0])

    first = await client.post(
        "/timers", json={"seconds": 0, "url": f"http://rebind.test:{port}/hook"}
    )
    assert first.status == 201  # a name: no DNS at create time
    fired = await _wait_final(client, (await first.json())["id"])
    assert fired["status"] == "fired"
    assert len(receiver.hits) == 1

    # another port, so aiohttp's DNS cache (keyed by host and port) asks again
    second = await client.post(
        "/timers", json={"seconds": 0, "url": f"http://rebind.test:{port + 1}/hook"}
    )
    tid = (await second.json())["id"]
    failed = await _wait_final(client, tid)
    assert failed["status"] == "failed"
    assert failed["attempts"] == 1  # no retries: retrying cannot help
    assert "outbound policy" in failed["last_error"]
    assert rebound in failed["last_error"]
    attempts = (await (await client.get(f"/timers/{tid}/attempts")).json())["attempts"]
    assert [a["outcome"] for a in attempts] == ["failed"]
    assert len(receiver.hits) == 1
    assert [c[0] for c in resolver.calls] == ["rebind.test", "rebind.test"]


async def test_a_literal_is_rechecked_when_sent(receiver: Receiver) -> None:
    """Timers created under a looser policy (before a restart) are checked again."""
    policy = OutboundPolicy.from_settings(Settings(host="0.0.0.0"))
    deliverer = Deliverer(
        DeliveryPolicy(
            attempt_timeout_s=2,
            max_in_flight=4,
            max_per_host=4,
            max_attempts=3,
            backoff_base_s=0.1,
            backoff_max_s=0.1,
            retry_after_max_s=1,
        ),
        outbound=policy,
    )
    await deliverer.start()
    try:
        now = time.time()
        timer = Timer(
            id="AAAAAAAAAAAAAAAAAAAAAA",
            url=receiver.url,
            fire_at=now,
            created_at=now,
            next_at=now,
            updated_at=now,
        )
        result = await deliverer.send(timer, 1)
    finally:
        await deliverer.close()
    assert not result.delivered
    assert result.permanent
    assert result.error is not None
    assert "127.0.0.1" in result.error
    assert receiver.hits == []


# Unicode spellings of a name (issue 14, item 10) --------------------------------------------

FULLWIDTH_LOCALHOST = "\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54"  # full-width letters
CIRCLED_LOCALHOST = "\u24db\u24de\u24d2\u24d0\u24db\u24d7\u24de\u24e2\u24e3"  # circled letters
IDEOGRAPHIC_METADATA = "metadata\u3002google\u3002internal"
LOCALHOST_SPELLINGS = [
    FULLWIDTH_LOCALHOST,
    CIRCLED_LOCALHOST,
    "LOCALHOST",
    "localhost.",
    "localhost\u3002",  # an ideographic full stop as the root
    "\uff2c\uff2f\uff23\uff21\uff2c\uff28\uff2f\uff33\uff34\uff0e",  # full-width capitals and dot
]
DENY_LOCALHOST = OutboundPolicy.from_settings(Settings(deny_hosts=("localhost",)))


def _port(receiver: Receiver) -> int:
    return int(receiver.url.split(":")[2].split("/")[0])


@pytest.mark.parametrize(
    ("spelling", "name"),
    [
        (FULLWIDTH_LOCALHOST, "localhost"),
        (CIRCLED_LOCALHOST, "localhost"),
        (IDEOGRAPHIC_METADATA, "metadata.google.internal"),
        ("metadata\uff0egoogle\uff61internal", "metadata.google.internal"),
        ("B\u00fccher.Example.", "xn--bcher-kva.example"),
        ("\uff11\uff12\uff17.\uff10.\uff10.\uff11", "127.0.0.1"),
        ("my_service", "my_service"),  # not an IDNA label, yet a name resolvers take
        ("::1", "::1"),
    ],
)
def test_names_are_judged_as_the_resolver_is_asked_for_them(spelling: str, name: str) -> None:
    assert resolver_name(spelling) == name


@pytest.mark.parametrize("spelling", LOCALHOST_SPELLINGS)
def test_deny_hosts_catches_every_spelling(spelling: str) -> None:
    reason = DENY_LOCALHOST.check_host(spelling)
    assert reason is not None
    assert "'localhost' in deny_hosts" in reason
    assert DENY_LOCALHOST.check_url(f"http://{spelling}:8000/hook") is not None


def test_the_default_deny_hosts_catch_metadata_with_other_dots() -> None:
    for spelling in (IDEOGRAPHIC_METADATA, "METADATA\uff0egoogle\uff61internal\uff0e"):
        reason = LOCAL.check_host(spelling)
        assert reason is not None
        assert "deny_hosts" in reason


def test_patterns_are_normalised_too() -> None:
    policy = OutboundPolicy.from_settings(
        Settings(deny_hosts=("*.B\u00fccher.example", FULLWIDTH_LOCALHOST))
    )
    assert policy.deny_hosts == ("*.xn--bcher-kva.example", "localhost")
    assert policy.check_host("shop.b\u00fccher.example") is not None
    assert policy.check_host("shop.xn--bcher-kva.example") is not None
    assert policy.check_host("localhost") is not None
    with pytest.raises(ConfigError, match="deny_hosts"):
        OutboundPolicy.from_settings(Settings(deny_hosts=("*\u00fc.example",)))


def test_a_name_with_no_idna_form_is_refused() -> None:
    reason = LOCAL.check_host("a\u2603.example")
    assert reason is not None
    assert "international domain name" in reason


@pytest.mark.parametrize("spelling", [*LOCALHOST_SPELLINGS, "127.0.0.1"])
async def test_create_refuses_every_spelling_of_a_denied_name(
    make_api: MakeApi, receiver: Receiver, spelling: str
) -> None:
    host = spelling if spelling != "127.0.0.1" else "localhost"
    client = await make_api(deny_hosts=("localhost",))
    url = f"http://{host}:{_port(receiver)}/hook"
    resp = await client.post("/timers", json={"seconds": 0, "url": url})
    assert resp.status == 422, await resp.text()
    assert "deny_hosts" in (await resp.json())["errors"][0]["message"]
    assert receiver.hits == []


async def test_create_refuses_metadata_with_ideographic_dots(api: TestClient[Any, Any]) -> None:
    url = f"http://{IDEOGRAPHIC_METADATA}/computeMetadata/v1"
    resp = await api.post("/timers", json={"seconds": 0, "url": url})
    assert resp.status == 422


@pytest.mark.parametrize("spelling", [FULLWIDTH_LOCALHOST, CIRCLED_LOCALHOST])
async def test_connect_time_applies_deny_hosts_to_the_resolved_name(
    receiver: Receiver, spelling: str
) -> None:
    """The webhook client and the resolver alone (no create-time check): nothing is sent."""
    url = f"http://{spelling}:{_port(receiver)}/hook"
    allowing = WebhookClient(user_agent="t", resolver=PolicyResolver(LOCAL))
    denying = WebhookClient(user_agent="t", resolver=PolicyResolver(DENY_LOCALHOST))
    try:
        answer = await allowing.post(url, {}, "AAAA")  # the spelling does reach localhost
        assert answer.status == 200
        assert len(receiver.hits) == 1
        with pytest.raises(OutboundBlocked, match="host localhost matches 'localhost'"):
            await denying.post(url, {}, "BBBB")
    finally:
        await allowing.close()
        await denying.close()
    assert receiver.ids() == ["AAAA"]


async def test_the_resolver_asks_no_dns_for_a_denied_name() -> None:
    inner = FlipResolver("127.0.0.1")
    resolver = PolicyResolver(DENY_LOCALHOST, inner)
    with pytest.raises(OutboundBlocked, match="deny_hosts"):
        await resolver.resolve("LOCALHOST.", 80)
    assert inner.calls == []


# IPv6 forms that carry an IPv4 address (issue 14, item 11) ----------------------------------

# each form of 169.254.169.254 (a9fe:a9fe) and of 127.0.0.1 (7f00:1)
CARRIERS = {
    "IPv4-compatible": ("::169.254.169.254", "::127.0.0.1"),
    "NAT64": ("64:ff9b::169.254.169.254", "64:ff9b::7f00:1"),
    "6to4": ("2002:a9fe:a9fe::1", "2002:7f00:1::"),
    "IPv4-translated": ("::ffff:0:169.254.169.254", "::ffff:0:7f00:1"),
    "Teredo": ("2001:0:4136:e378:8000:63bf:5601:5601", "2001:0:4136:e378:8000:63bf:80ff:fffe"),
}


@pytest.mark.parametrize("kind", sorted(CARRIERS))
def test_an_ipv6_form_is_judged_by_the_ipv4_address_inside(kind: str) -> None:
    metadata, loopback = CARRIERS[kind]
    for policy in (LOCAL, PUBLIC):
        reason = policy.check_host(metadata)
        assert reason is not None, (kind, metadata)
        assert f"({kind}) carries 169.254.169.254" in reason
        assert "deny_networks" in reason
    assert LOCAL.check_host(loopback) is None  # loopback is fine for a loopback-bound daemon
    reason = PUBLIC.check_host(loopback)
    assert reason is not None
    assert "carries 127.0.0.1" in reason


def test_ipv6_loopback_and_plain_ipv6_are_not_mistaken_for_ipv4() -> None:
    assert carried_ipv4(ipaddress.IPv6Address("::1")) is None
    assert carried_ipv4(ipaddress.IPv6Address("2606:4700::1111")) is None
    assert LOCAL.check_host("::1") is None
    assert PUBLIC.check_host("2606:4700::1111") is None
    assert PUBLIC.check_host("64:ff9b::93.184.216.34") is None  # NAT64 to a public host


def test_an_ipv6_deny_rule_still_holds_for_a_carrier() -> None:
    policy = OutboundPolicy.from_settings(Settings(deny_networks=("2002::/16",)))
    assert policy.check_host("2002:5db8:d822::1") is not None  # 6to4 of 93.184.216.34


DENY_127 = (*Settings().deny_networks, "127.0.0.0/8")


@pytest.mark.parametrize("kind", sorted(CARRIERS))
async def test_create_refuses_a_carrier_of_a_denied_ipv4_network(
    make_api: MakeApi, receiver: Receiver, kind: str
) -> None:
    client = await make_api(deny_networks=DENY_127)
    direct = await client.post("/timers", json={"seconds": 0, "url": receiver.url})
    assert direct.status == 422  # the receiver's own address is denied: the baseline
    literal = CARRIERS[kind][1]
    url = f"http://[{literal}]:{_port(receiver)}/hook"
    resp = await client.post("/timers", json={"seconds": 0, "url": url})
    assert resp.status == 422, await resp.text()
    assert "carries 127.0.0.1" in (await resp.json())["errors"][0]["message"]


@pytest.mark.parametrize("kind", sorted(CARRIERS))
async def test_a_name_resolving_to_a_carrier_is_failed_at_once(
    aiohttp_client: AiohttpClient, tmp_path: Path, receiver: Receiver, kind: str
) -> None:
    resolver = FlipResolver(CARRIERS[kind][0])
    app = build_app(make_settings(tmp_path, max_attempts=3), resolver=resolver)
    client = await aiohttp_client(app)
    url = f"http://carrier.test:{_port(receiver)}/hook"
    created = await client.post("/timers", json={"seconds": 0, "url": url})
    assert created.status == 201  # a name: no DNS at create time
    failed = await _wait_final(client, (await created.json())["id"])
    assert failed["status"] == "failed"
    assert failed["attempts"] == 1  # blocked, not a connection error to retry
    assert f"({kind}) carries 169.254.169.254" in failed["last_error"]
    assert receiver.hits == []
