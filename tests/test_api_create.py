"""POST /timers: the success answer and every body rule of SPEC.md."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.api_helpers import (
    FAR_S,
    Client,
    all_timers,
    assert_invalid,
    assert_problem,
    create,
    get_timer,
)
from tests.conftest import Receiver

MakeApi = Callable[..., Awaitable[Client]]
URL = "https://a.example/hook"


async def post_raw(client: Client, data: bytes | str, content_type: str | None) -> Any:
    headers = {} if content_type is None else {"Content-Type": content_type}
    raw = data.encode() if isinstance(data, str) else data
    # a stream, so aiohttp does not warn about a large in-memory body
    return await client.post("/timers", data=io.BytesIO(raw), headers=headers)


async def test_create_answers_201_with_id_and_location(api: Client) -> None:
    resp = await api.post("/timers", json={"hours": 1, "url": URL})
    assert resp.status == 201
    assert resp.content_type == "application/json"
    body = await resp.json()
    assert set(body) == {"id"}
    timer_id = body["id"]
    assert isinstance(timer_id, str)
    assert timer_id
    assert resp.headers["Location"] == f"/timers/{timer_id}"
    timer = await get_timer(api, timer_id)
    assert timer["status"] == "pending"
    assert timer["url"] == URL


async def test_ids_are_opaque_and_distinct(api: Client) -> None:
    ids = [await create(api, hours=1, url=URL) for _ in range(20)]
    assert len(set(ids)) == 20
    assert not any(i.isdigit() for i in ids)
    assert all(len(i) >= 16 for i in ids)  # unguessable: not a short counter
    assert all(i.replace("-", "").replace("_", "").isalnum() for i in ids)


@pytest.mark.parametrize(
    ("body", "delay_s"),
    [
        ({"hours": 1}, 3600),
        ({"minutes": 2}, 120),
        ({"seconds": 30}, 30),
        ({"seconds": 1.5}, 1.5),
        ({"seconds": 0.25, "minutes": 1}, 60.25),
        ({"hours": 1, "minutes": 2, "seconds": 3}, 3723),
        ({"hours": 1.0}, 3600),
        ({"hours": 0, "minutes": 0, "seconds": 1e-3}, 0.001),
    ],
)
async def test_durations_set_the_due_instant(
    api: Client, body: dict[str, Any], delay_s: float
) -> None:
    before = time.time()
    timer_id = await create(api, url=URL, **body)
    after = time.time()
    timer = await get_timer(api, timer_id)
    assert before + delay_s - 0.01 <= timer["fire_at"] <= after + delay_s + 0.01
    assert before - 0.01 <= timer["created_at"] <= after + 0.01


async def test_a_typo_is_rejected_with_a_hint_and_creates_nothing(api: Client) -> None:
    # SPEC changed: unknown fields were ignored, so {"secs": 30} fired at once
    resp = await api.post("/timers", json={"secs": 30, "url": URL})
    body = await assert_invalid(resp, "secs", "body")
    messages = {e["field"]: e["message"] for e in body["errors"]}
    assert "did you mean seconds?" in messages["secs"]
    assert '{"seconds": 0}' in messages["body"]
    assert await all_timers(api) == []


async def test_every_unknown_field_is_named(api: Client) -> None:
    body = {"seconds": FAR_S, "url": URL, "name": "x", "nested": {"a": [1, 2]}, "id": "mine"}
    resp = await api.post("/timers", json=body)
    problem = await assert_invalid(resp, "name", "nested", "id")
    assert all("not a known field" in e["message"] for e in problem["errors"])
    assert await all_timers(api) == []


async def test_a_body_that_does_not_say_when_is_422(api: Client) -> None:
    resp = await api.post("/timers", json={"url": URL})
    await assert_invalid(resp, "body")
    assert await all_timers(api) == []


async def test_limit_errors_speak_in_human_units(api: Client) -> None:
    resp = await api.post("/timers", json={"hours": 87_661, "url": URL})
    problem = await assert_invalid(resp, "hours")
    assert "10 years" in problem["errors"][0]["message"]
    resp = await api.post("/timers", json={"fire_at": time.time() + 4e8, "url": URL})
    problem = await assert_invalid(resp, "fire_at")
    assert "10 years" in problem["errors"][0]["message"]
    assert "e+" not in problem["detail"]


@pytest.mark.parametrize("host", ["999.999.999.999", "1.2.3.256", "a.example.123"])
async def test_a_host_ending_in_a_number_must_be_an_ipv4_address(api: Client, host: str) -> None:
    resp = await api.post("/timers", json={"seconds": FAR_S, "url": f"http://{host}/hook"})
    await assert_invalid(resp, "url")


async def test_zero_delay_fires_at_once(api: Client, receiver: Receiver) -> None:
    before = time.time()
    timer_id = await create(api, seconds=0, url=receiver.url)
    (hit,) = await receiver.wait_for(1, timeout_s=5)
    assert hit.path == f"/hook/{timer_id}"
    assert hit.arrived_at - before < 2.0


async def test_all_zero_durations_fire_at_once(api: Client, receiver: Receiver) -> None:
    timer_id = await create(api, url=receiver.url, hours=0, minutes=0, seconds=0)
    (hit,) = await receiver.wait_for(1, timeout_s=5)
    assert hit.path == f"/hook/{timer_id}"


# -- content types ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "text/plain",
        "text/plain; charset=utf-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonx",
        "application/xml",
        "text/json",
    ],
)
async def test_non_json_content_type_is_415(api: Client, content_type: str | None) -> None:
    body = json.dumps({"seconds": FAR_S, "url": URL})
    resp = await post_raw(api, body, content_type)
    await assert_problem(resp, 415)
    assert await all_timers(api) == []


async def test_form_post_is_415(api: Client) -> None:
    resp = await api.post("/timers", data={"seconds": "1", "url": URL})
    await assert_problem(resp, 415)
    assert await all_timers(api) == []


@pytest.mark.parametrize(
    "content_type",
    ["application/json; charset=utf-8", "application/json;charset=UTF-8", "Application/JSON"],
)
async def test_json_content_type_with_parameters_is_accepted(
    api: Client, content_type: str
) -> None:
    resp = await post_raw(api, json.dumps({"seconds": FAR_S, "url": URL}), content_type)
    assert resp.status == 201, await resp.text()


# -- not JSON, not an object -----------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{",
        b"not json",
        b"{'url': 'https://a.example'}",
        b'{"url": "https://a.example",}',
        b"\xff\xfe\xfa",
        b'{"url": "https://a.example"} trailing',
    ],
)
async def test_body_that_is_not_json_is_400(api: Client, raw: bytes) -> None:
    await assert_problem(await post_raw(api, raw, "application/json"), 400)


@pytest.mark.parametrize("raw", ["[]", '[{"url": "https://a.example"}]', '"x"', "1", "1.5", "null"])
async def test_body_that_is_not_an_object_is_400(api: Client, raw: str) -> None:
    await assert_problem(await post_raw(api, raw, "application/json"), 400)
    assert await all_timers(api) == []


# -- durations ---------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["hours", "minutes", "seconds"])
@pytest.mark.parametrize(
    "value",
    [True, False, "1", "", None, [], {}, -1, -0.5, 10**30, 1e300],
    ids=repr,
)
async def test_bad_duration_is_422(api: Client, field: str, value: Any) -> None:
    resp = await api.post("/timers", json={field: value, "url": URL})
    await assert_invalid(resp, field)
    assert await all_timers(api) == []


@pytest.mark.parametrize("field", ["hours", "minutes", "seconds"])
@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400", "-1e400"])
async def test_non_finite_duration_is_422(api: Client, field: str, literal: str) -> None:
    raw = f'{{"{field}": {literal}, "url": "{URL}"}}'
    await assert_invalid(await post_raw(api, raw, "application/json"), field)
    assert await all_timers(api) == []


@pytest.mark.parametrize("field", ["hours", "minutes"])
@pytest.mark.parametrize("value", [0.5, 1.25, 1e-9])
async def test_fractional_hours_and_minutes_are_422(api: Client, field: str, value: float) -> None:
    await assert_invalid(await api.post("/timers", json={field: value, "url": URL}), field)


async def test_each_broken_field_is_reported(api: Client) -> None:
    resp = await api.post("/timers", json={"hours": -1, "minutes": "2", "seconds": None})
    await assert_invalid(resp, "hours", "minutes", "seconds", "url")


@pytest.mark.parametrize(
    ("body", "ok"),
    [
        ({"seconds": 100}, True),
        ({"seconds": 99.5}, True),
        ({"minutes": 1, "seconds": 40}, True),
        ({"seconds": 100.001}, False),
        ({"minutes": 1, "seconds": 41}, False),
        ({"minutes": 2}, False),
        ({"hours": 1}, False),
        ({"seconds": 10**30}, False),
    ],
)
async def test_total_delay_above_the_maximum_is_422(
    make_api: MakeApi, body: dict[str, Any], ok: bool
) -> None:
    client = await make_api(max_delay_s=100)
    resp = await client.post("/timers", json={**body, "url": URL})
    if ok:
        assert resp.status == 201, await resp.text()
    else:
        problem = await assert_problem(resp, 422)
        assert problem["errors"]
        assert {e["field"] for e in problem["errors"]} <= {"hours", "minutes", "seconds"}
        assert await all_timers(client) == []


async def test_default_maximum_is_at_least_ten_years(api: Client) -> None:
    resp = await api.post("/timers", json={"hours": 24 * 3652, "url": URL})
    assert resp.status == 201, await resp.text()


# -- url -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "/hook",
        "hook",
        "a.example/hook",
        "//a.example/hook",
        "ftp://a.example/hook",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "mailto:a@a.example",
        "http://",
        "https://",
        "http:///hook",
        "http://:80/hook",
        "http://user@/hook",
        "https://a.example/ho ok",
        "https://a. example/hook",
        " https://a.example/hook",
        "https://a.example/hook ",
        "https://a.example/\x00",
        "https://a.example/\n",
        "https://a.example/\r\nX-Injected: 1",
        "https://a.example/\t",
        "https://a.example/\x7f",
        "https://a.example/\u00a0",
        "https://a.example/\u2028",
        "https://a.example:99999/hook",
        "https://a.example:65536/hook",
        "https://a.example:-1/hook",
        "https://a.example:abc/hook",
        "http://[::1/hook",
        "",
        "https://a.example/" + "x" * 2100,
    ],
    ids=repr,
)
async def test_bad_url_is_422(api: Client, url: str) -> None:
    await assert_invalid(await api.post("/timers", json={"seconds": 1, "url": url}), "url")
    assert await all_timers(api) == []


@pytest.mark.parametrize("value", [None, 1, True, [], {}, ["https://a.example"]], ids=repr)
async def test_url_that_is_not_a_string_is_422(api: Client, value: Any) -> None:
    await assert_invalid(await api.post("/timers", json={"seconds": 1, "url": value}), "url")


async def test_missing_url_is_422(api: Client) -> None:
    await assert_invalid(await api.post("/timers", json={"seconds": 1}), "url")
    # SPEC changed: a body must also say when
    await assert_invalid(await api.post("/timers", json={}), "url", "body")


@pytest.mark.parametrize(
    "url",
    [
        "http://a.example",
        "https://a.example/hook",
        "HTTPS://A.EXAMPLE/hook",
        "http://127.0.0.1:8080/hook?k=v&x=%20y",
        "http://[::1]:9000/hook",
        "https://user:pass@a.example/hook",
        "https://xn--bcher-kva.example/hook",
    ],
)
async def test_good_url_is_accepted_as_given(api: Client, url: str) -> None:
    timer_id = await create(api, seconds=FAR_S, url=url)
    assert (await get_timer(api, timer_id))["url"] == url


async def test_url_length_is_bounded(make_api: MakeApi) -> None:
    client = await make_api(max_url_length=64)
    base = "https://a.example/"
    ok = base + "x" * (64 - len(base))
    assert (await client.post("/timers", json={"seconds": 1, "url": ok})).status == 201
    resp = await client.post("/timers", json={"seconds": 1, "url": ok + "x"})
    await assert_invalid(resp, "url")


# -- size, depth and robustness ------------------------------------------------------------


async def test_huge_body_is_413(make_api: MakeApi) -> None:
    client = await make_api(max_body_bytes=1024)
    body = json.dumps({"seconds": 1, "url": URL, "pad": "x" * 4096})
    resp = await post_raw(client, body, "application/json")
    await assert_problem(resp, 413)
    assert await all_timers(client) == []


async def test_default_body_cap_rejects_a_megabytes_body(api: Client) -> None:
    body = json.dumps({"seconds": 1, "url": URL, "pad": "x" * 2_000_000})
    await assert_problem(await post_raw(api, body, "application/json"), 413)


@pytest.mark.parametrize(
    "raw",
    [
        "[" * 100_000 + "]" * 100_000,
        '{"a":' * 50_000 + "1" + "}" * 50_000,
        '{"seconds": 1, "url": "https://a.example", "x": ' + "[" * 20_000 + "]" * 20_000 + "}",
        "[" * 100_000,
    ],
    ids=["array", "object", "inside-unknown-field", "unclosed"],
)
async def test_deeply_nested_json_is_4xx(api: Client, raw: str) -> None:
    resp = await post_raw(api, raw, "application/json")
    assert 400 <= resp.status < 500, await resp.text()
    await assert_problem(resp, resp.status)


@pytest.mark.parametrize("idempotency_key", [False, True])
async def test_nesting_at_the_parser_limit_is_never_5xx(api: Client, idempotency_key: bool) -> None:
    """The deepest body the JSON parser accepts must survive the rest of the request too."""
    calls = 0

    async def status_at(depth: int) -> int:
        nonlocal calls
        calls += 1
        raw = f'{{"seconds": {FAR_S}, "url": "{URL}", "x": ' + "[" * depth + "]" * depth + "}"
        headers = {"Content-Type": "application/json"}
        if idempotency_key:
            headers["Idempotency-Key"] = f"nest-{calls}"
        resp = await api.post("/timers", data=raw, headers=headers)
        assert resp.status < 500, (depth, await resp.text())
        return resp.status

    # bisect for the first depth the parser refuses: it must be a 4xx, not a 5xx (SPEC
    # changed: the unknown field "x" makes every parsed body a 422, no longer a 201)
    low, high = 1, 100_000
    assert await status_at(low) == 422
    assert await status_at(high) == 400
    while high - low > 1:
        middle = (low + high) // 2
        if await status_at(middle) == 422:
            low = middle
        else:
            high = middle
    for depth in range(max(1, high - 5), high + 5):
        await status_at(depth)


@pytest.mark.parametrize(
    "raw",
    [
        '{"seconds": 1e999999, "url": "https://a.example"}',
        '{"seconds": 1' + "0" * 5000 + ', "url": "https://a.example"}',
        '{"seconds": -0.0, "url": "https://a.example"}',
        '{"seconds": 1, "url": "https://a.example/\\ud800"}',
        '{"seconds": 1, "url": "https://\\u00e9\\u00e9.example/"}',
        '{"seconds": 1, "url": "https://a.example", "url": 5}',
        '{"seconds": 1, "url": "http://' + "a." * 200 + 'example"}',
        '{"fire_at": "9999-12-31T23:59:59+00:00", "url": "https://a.example"}',
        '{"fire_at": "0001-01-01T00:00:00+01:00", "url": "https://a.example/x"}',
        '{"fire_at": 1e308, "url": "https://a.example"}',
        '{"fire_at": -1e308, "url": "https://a.example"}',
        '{"fire_at": 1' + "0" * 400 + ', "url": "https://a.example"}',
        '{"fire_at": "", "url": "https://a.example"}',
        '{"fire_at": "T", "url": "https://a.example"}',
        '{"fire_at": {"$date": 1}, "url": "https://a.example"}',
        '{"\\u0000": 1, "seconds": 1, "url": "https://a.example"}',
    ],
)
async def test_odd_bodies_never_give_5xx(api: Client, raw: str) -> None:
    for path in ("/timers", "/timers/batch"):
        data = raw if path == "/timers" else f'{{"timers": [{raw}]}}'
        resp = await api.post(path, data=data, headers={"Content-Type": "application/json"})
        assert resp.status < 500, await resp.text()
        if resp.status >= 400:
            await assert_problem(resp, resp.status)
