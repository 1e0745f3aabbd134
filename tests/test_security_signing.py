"""Signed webhooks, checked by an independent verifier: the `standardwebhooks` package."""

from __future__ import annotations

import base64
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.conftest import Hit, Receiver
from timerd.delivery.signing import parse_secret, sign, signature_headers
from timerd.errors import ConfigError

MakeApi = Callable[..., Awaitable[TestClient[Any, Any]]]
KEY = b"0123456789abcdef0123456789abcdef"
SECRET = "whsec_" + base64.b64encode(KEY).decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"another key, another sender!").decode()


def _webhook_headers(hit: Hit) -> dict[str, str]:
    return {k.lower(): v for k, v in hit.headers.items() if k.lower().startswith("webhook-")}


async def _one_delivery(make_api: MakeApi, receiver: Receiver, secret: str) -> Hit:
    client = await make_api(signing_secret=secret)
    resp = await client.post("/timers", json={"seconds": 0, "url": receiver.url})
    assert resp.status == 201
    tid = (await resp.json())["id"]
    hits = await receiver.wait_for(1)
    assert hits[0].path.endswith("/" + tid)
    return hits[0]


async def test_deliveries_verify_with_standardwebhooks(
    make_api: MakeApi, receiver: Receiver
) -> None:
    hit = await _one_delivery(make_api, receiver, SECRET)
    headers = _webhook_headers(hit)
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert headers["webhook-id"] == hit.path.rsplit("/", 1)[-1]  # the timer id
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 30
    assert headers["webhook-signature"].startswith("v1,")
    assert hit.body == b""
    Webhook(SECRET).verify(hit.body, hit.headers, json_parse=False)


async def test_a_raw_string_secret_is_its_utf8_bytes(make_api: MakeApi, receiver: Receiver) -> None:
    raw = "plain shared secret"
    hit = await _one_delivery(make_api, receiver, raw)
    # the library reads a str as base64, so a receiver passes the raw secret as bytes
    Webhook(raw.encode()).verify(hit.body, hit.headers, json_parse=False)


async def test_unsigned_without_a_secret(api: TestClient[Any, Any], receiver: Receiver) -> None:
    await api.post("/timers", json={"seconds": 0, "url": receiver.url})
    hit = (await receiver.wait_for(1))[0]
    assert _webhook_headers(hit) == {}


async def test_every_retry_is_signed_afresh(make_api: MakeApi, receiver: Receiver) -> None:
    from aiohttp import web

    async def fail_once(hit: Hit) -> web.StreamResponse:
        return web.Response(status=500 if len(receiver.hits) == 1 else 200)

    receiver.respond = fail_once
    client = await make_api(signing_secret=SECRET)
    await client.post("/timers", json={"seconds": 0, "url": receiver.url})
    first, second = await receiver.wait_for(2)
    for hit in (first, second):
        Webhook(SECRET).verify(hit.body, hit.headers, json_parse=False)
    # the same message id on a retry (the standard's rule), so receivers can deduplicate
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert (first.headers["Timerd-Attempt"], second.headers["Timerd-Attempt"]) == ("1", "2")


# the verifier rejects what it should ----------------------------------------------------------


def _headers(msg_id: str, timestamp: int, key: bytes = KEY) -> dict[str, str]:
    return signature_headers(key, msg_id, timestamp)


def test_replay_of_an_old_message_is_rejected() -> None:
    old = int(time.time()) - 10 * 60  # beyond the verifier's 5 minute tolerance
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(SECRET).verify(b"", _headers("AAAAAAAAAAAAAAAAAAAAAA", old), json_parse=False)


def test_a_future_timestamp_is_rejected() -> None:
    future = int(time.time()) + 10 * 60
    with pytest.raises(WebhookVerificationError, match="too new"):
        Webhook(SECRET).verify(b"", _headers("AAAAAAAAAAAAAAAAAAAAAA", future), json_parse=False)


def test_forgery_with_another_secret_is_rejected() -> None:
    headers = _headers("AAAAAAAAAAAAAAAAAAAAAA", int(time.time()), parse_secret(OTHER_SECRET))
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        Webhook(SECRET).verify(b"", headers, json_parse=False)


@pytest.mark.parametrize("field", ["webhook-id", "webhook-timestamp"])
def test_tampering_with_id_or_timestamp_is_rejected(field: str) -> None:
    now = int(time.time())
    headers = _headers("AAAAAAAAAAAAAAAAAAAAAA", now)
    headers[field] = "BBBBBBBBBBBBBBBBBBBBBB" if field == "webhook-id" else str(now - 1)
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        Webhook(SECRET).verify(b"", headers, json_parse=False)


def test_a_body_added_in_transit_is_rejected() -> None:
    headers = _headers("AAAAAAAAAAAAAAAAAAAAAA", int(time.time()))
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(b"{}", headers, json_parse=False)


def test_sign_matches_the_specs_worked_example() -> None:
    # the example of the Standard Webhooks spec and reference libraries
    key = parse_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    msg_id, timestamp = "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330
    body = b'{"test": 2432232314}'
    assert sign(key, msg_id, timestamp, body) == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


@pytest.mark.parametrize("bad", ["whsec_", "whsec_***", "whsec_abc$", ""])
def test_bad_secrets_are_config_errors(bad: str) -> None:
    with pytest.raises(ConfigError, match="signing_secret"):
        parse_secret(bad)


def test_unpadded_base64_is_accepted() -> None:
    assert parse_secret("whsec_" + base64.b64encode(b"abcd1").decode().rstrip("=")) == b"abcd1"
