"""Campaign 4: hostile input. Property-based fuzzing of every route, hand-written nasties,
slow clients and ten thousand idle connections. Zero 5xx, zero crashes, bounded memory.

Every fuzzed webhook URL points at 127.0.0.1 (a closed port): timers that happen to be valid
and due would otherwise try to reach the internet. Arbitrary hosts (IDN, unicode, junk) are
fuzzed against the validator alone, where nothing is sent.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import math
import os
import resource
import select
import socket
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.procs import START_TIMEOUT_S, TIMERD
from tests.reliability.campaign import SEED, report, rss_mb, size
from timerd.errors import TimerdError
from timerd.validation import BodyLimits, parse_create

pytestmark = pytest.mark.e2e

EXAMPLES = size(250, 5000)
STATS: dict[str, int] = {"requests": 0, "5xx": 0}


class LiveDaemon:
    """A `timerd serve` subprocess shared by the fuzz tests of this module."""

    def __init__(self, db: Path) -> None:
        self.proc = subprocess.Popen(
            [TIMERD, "serve", "--port", "0", "--db", str(db), "--max-attempts", "1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "TIMERD_LOG_LEVEL": "error"},
        )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], START_TIMEOUT_S)
        if not ready:  # a deadline, not a hang: the daemon said nothing
            self.proc.kill()
            raise AssertionError(f"timerd printed nothing within {START_TIMEOUT_S} s")
        line = self.proc.stdout.readline()
        assert line.startswith("listening on "), line
        parsed = urllib.parse.urlsplit(line.split("listening on ", 1)[1].strip())
        self.host, self.port = parsed.hostname or "127.0.0.1", parsed.port or 0
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=10)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        for _ in range(2):
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                resp = self.conn.getresponse()
                data = resp.read()
                STATS["requests"] += 1
                if resp.status >= 500:
                    STATS["5xx"] += 1
                return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        raise AssertionError(f"the daemon stopped answering on {method} {path!r}")

    def close(self) -> None:
        self.conn.close()
        self.proc.terminate()
        self.proc.wait(timeout=30)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDaemon]:
    daemon = LiveDaemon(tmp_path_factory.mktemp("fuzz") / "fuzz.db")
    yield daemon
    alive = daemon.proc.poll() is None
    peak = rss_mb(daemon.proc.pid)
    daemon.close()
    report("hostile_input", requests=STATS["requests"], five_xx=STATS["5xx"], peak_rss_mb=peak)
    assert alive, "the daemon died during fuzzing"


def check_answer(status: int, headers: dict[str, str], body: bytes, method: str) -> None:
    assert status < 500, body[:300]
    if status >= 400 and method != "HEAD":
        assert headers["content-type"].startswith("application/problem+json"), headers
        problem = json.loads(body)
        assert {"type", "title", "status", "detail"} <= set(problem)
        assert problem["status"] == status


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
loopback_urls = st.builds(
    lambda path, query: "http://127.0.0.1:9/" + path + (f"?{query}" if query else ""),
    st.text(max_size=30),
    st.text(max_size=10),
)
create_bodies = st.fixed_dictionaries(
    {},
    optional={
        "hours": json_values,
        "minutes": json_values,
        "seconds": json_values,
        "fire_at": json_values | st.sampled_from(["2026-11-23T10:00:00Z", "2026-11-23T10:00:00"]),
        "url": loopback_urls | json_values,
        "extra": json_values,
    },
)
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def _safe_url(body: Any) -> Any:
    """Keep any URL the daemon could accept on loopback."""
    url = body.get("url") if isinstance(body, dict) else None
    if isinstance(url, str) and not url.startswith("http://127.0.0.1:9/"):
        body["url"] = 12345  # a non-string: always rejected, never sent
    return body


@FUZZ
@given(body=create_bodies, content_type=st.sampled_from(["application/json", "text/plain", ""]))
def test_fuzz_create(live: LiveDaemon, body: dict[str, Any], content_type: str) -> None:
    raw = json.dumps(_safe_url(body), allow_nan=True).encode()
    headers = {"Content-Type": content_type} if content_type else {}
    check_answer(*live.request("POST", "/timers", raw, headers), "POST")


@FUZZ
@given(items=st.lists(create_bodies, max_size=5), wrap=st.booleans())
def test_fuzz_batch(live: LiveDaemon, items: list[dict[str, Any]], wrap: bool) -> None:
    payload: Any = (
        {"timers": [_safe_url(i) for i in items]} if wrap else [_safe_url(i) for i in items]
    )
    raw = json.dumps(payload).encode()
    check_answer(
        *live.request("POST", "/timers/batch", raw, {"Content-Type": "application/json"}), "POST"
    )


@FUZZ
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]),
    segment=st.text(max_size=40),
    tail=st.sampled_from(["", "/fire", "/attempts", "/x"]),
    body=st.binary(max_size=64),
)
def test_fuzz_paths_and_methods(
    live: LiveDaemon, method: str, segment: str, tail: str, body: bytes
) -> None:
    path = "/timers/" + urllib.parse.quote(segment, safe="") + tail
    headers = {"Content-Type": "application/json"}
    check_answer(*live.request(method, path, body if method != "GET" else None, headers), method)


@FUZZ
@given(status=st.text(max_size=12), limit=st.text(max_size=12), cursor=st.text(max_size=40))
def test_fuzz_list_query(live: LiveDaemon, status: str, limit: str, cursor: str) -> None:
    query = urllib.parse.urlencode({"status": status, "limit": limit, "cursor": cursor})
    check_answer(*live.request("GET", "/timers?" + query), "GET")


@FUZZ
@given(
    key=st.text(
        alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
        max_size=300,
    )
)
def test_fuzz_idempotency_keys(live: LiveDaemon, key: str) -> None:
    """Header values the HTTP grammar allows; other bytes never reach timerd (aiohttp's
    parser answers a plain-text 400 for a malformed request, before any handler)."""
    body = json.dumps({"hours": 1000, "url": "http://127.0.0.1:9/k"}).encode()
    headers = {"Content-Type": "application/json", "Idempotency-Key": key}
    try:
        answer = live.request("POST", "/timers", body, headers)
    except UnicodeEncodeError:
        return  # http.client cannot even send it
    check_answer(*answer, "POST")


@settings(max_examples=EXAMPLES * 4, derandomize=True, deadline=None, database=None)
@given(
    url=st.text(max_size=80)
    | st.builds(lambda h: f"http://{h}/x", st.text(min_size=1, max_size=40))
)
def test_fuzz_urls_against_the_validator(url: str) -> None:
    """Arbitrary hosts, IDN and control characters: accepted or 4xx, never an exception."""
    limits = BodyLimits(max_delay_s=1e9, max_url_length=2048)
    try:
        spec = parse_create({"seconds": 0, "url": url}, now=0.0, limits=limits)
    except TimerdError as exc:
        rejected_status = exc.status
    else:
        rejected_status = 0
    if rejected_status:
        assert 400 <= rejected_status < 500
        return
    parts = urllib.parse.urlsplit(spec.url)
    assert parts.scheme in ("http", "https")
    assert parts.hostname
    assert all(c.isprintable() and c != " " for c in spec.url)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"[" * 100_000 + b"]" * 100_000, 400),
        (b'{"a":' * 50_000 + b"1" + b"}" * 50_000, 400),
        (b'{"seconds": 1e400, "url": "http://127.0.0.1:9/"}', 422),
        (b'{"hours": 1000000000000000000000000000000, "url": "http://127.0.0.1:9/"}', 422),
        (b'{"seconds": NaN, "url": "http://127.0.0.1:9/"}', 422),
        (b'{"seconds": -Infinity, "url": "http://127.0.0.1:9/"}', 422),
        (b'{"seconds": 1, "url": "http://127.0.0.1:9/a\\r\\nX-Injected: 1"}', 422),
        (b'{"seconds": 1, "url": "http://127.0.0.1:9/\\u0000"}', 422),
        (b'{"seconds": 1, "url": "http://[::1/"}', 422),
        (b'{"seconds": 1, "url": "http://127.0.0.1:99999/"}', 422),
        (b"\xff\xfe\x00garbage", 400),
        (b"", 400),
    ],
    ids=[
        "deep-array",
        "deep-object",
        "1e400",
        "10**30",
        "NaN",
        "-Infinity",
        "crlf-in-url",
        "nul-in-url",
        "broken-ipv6",
        "bad-port",
        "not-utf8",
        "empty",
    ],
)
def test_hand_written_nasties(live: LiveDaemon, raw: bytes, expected: int) -> None:
    status, headers, body = live.request(
        "POST", "/timers", raw, {"Content-Type": "application/json"}
    )
    check_answer(status, headers, body, "POST")
    assert status == expected, body[:200]


def test_oversized_body_is_413(live: LiveDaemon) -> None:
    raw = b'{"url": "' + b"a" * (2 * 1024 * 1024) + b'"}'
    check_answer(
        *live.request("POST", "/timers", raw, {"Content-Type": "application/json"}), "POST"
    )


async def test_slowloris_and_idle_connections_do_not_starve_real_clients(
    live: LiveDaemon,
) -> None:
    idle_target = size(2000, 10_000)
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < idle_target + 500:
        pytest.skip(f"open-file limit {soft} is below {idle_target + 500}")
    loop = asyncio.get_running_loop()
    socks: list[socket.socket] = []
    try:
        for i in range(idle_target):
            s = socket.socket()
            s.setblocking(False)
            await loop.sock_connect(s, (live.host, live.port))
            if i % 10 == 0:  # every tenth one is a slowloris: half a request line, never finished
                await loop.sock_sendall(s, b"POST /timers HTTP/1.1\r\nHost: x\r\nContent-Le")
            socks.append(s)
        started = time.monotonic()
        status, _, _ = await asyncio.to_thread(live.request, "GET", "/healthz")
        health_s = time.monotonic() - started
        body = json.dumps({"hours": 1000, "url": "http://127.0.0.1:9/idle"}).encode()
        created, _, _ = await asyncio.to_thread(
            live.request, "POST", "/timers", body, {"Content-Type": "application/json"}
        )
        peak = rss_mb(live.proc.pid)
    finally:
        for s in socks:
            s.close()
    report("idle_connections", idle=idle_target, healthz_s=round(health_s, 3), peak_rss_mb=peak)
    assert status == 200
    assert created == 201
    assert health_s < 2.0
    assert peak < 400 or math.isclose(peak, -1)
    assert SEED  # the campaign seed is part of the report
