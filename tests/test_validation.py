"""Pure tests of timerd.validation: the body rules without HTTP."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from timerd.errors import BadRequest, FieldError, ValidationFailed
from timerd.validation import BodyLimits, human_duration, parse_batch, parse_create, parse_patch

NOW = 1_800_000_000.0
LIMITS = BodyLimits(max_delay_s=1000.0, max_url_length=100)
URL = "https://a.example/hook"


def fields_of(excinfo: pytest.ExceptionInfo[ValidationFailed]) -> list[str]:
    return sorted(e.field for e in excinfo.value.errors)


@pytest.mark.parametrize(
    ("body", "delay_s"),
    [
        ({"seconds": 0}, 0),
        ({"seconds": 0.5}, 0.5),
        ({"minutes": 2, "seconds": 1}, 121),
        ({"hours": 0, "minutes": 16, "seconds": 40}, 1000),
        ({"seconds": 1000}, 1000),
        ({"hours": 0.0}, 0),
    ],
)
def test_durations(body: dict[str, Any], delay_s: float) -> None:
    spec = parse_create({**body, "url": URL}, now=NOW, limits=LIMITS)
    assert spec.fire_at == pytest.approx(NOW + delay_s)
    assert spec.url == URL


@pytest.mark.parametrize("body", [[], "x", 1, None, 1.5, True])
def test_not_an_object_is_bad_request(body: Any) -> None:
    for parse in (parse_create, parse_patch):
        with pytest.raises(BadRequest):
            parse(body, now=NOW, limits=LIMITS)
    with pytest.raises(BadRequest):
        parse_batch(body, now=NOW, limits=LIMITS, max_items=10)


@pytest.mark.parametrize("field", ["hours", "minutes", "seconds"])
@pytest.mark.parametrize(
    "value",
    [True, False, None, "1", [], {}, -1, -1e-9, math.nan, math.inf, -math.inf, 10**400],
    ids=repr,
)
def test_bad_durations(field: str, value: Any) -> None:
    with pytest.raises(ValidationFailed) as excinfo:
        parse_create({field: value, "url": URL}, now=NOW, limits=LIMITS)
    assert fields_of(excinfo) == [field]


@pytest.mark.parametrize(("field", "value"), [("hours", 1.5), ("minutes", 0.1)])
def test_fractional_hours_and_minutes(field: str, value: float) -> None:
    with pytest.raises(ValidationFailed) as excinfo:
        parse_create({field: value, "url": URL}, now=NOW, limits=LIMITS)
    assert fields_of(excinfo) == [field]


def test_total_over_the_maximum() -> None:
    with pytest.raises(ValidationFailed) as excinfo:
        parse_create({"minutes": 16, "seconds": 41, "url": URL}, now=NOW, limits=LIMITS)
    assert fields_of(excinfo) == ["seconds"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (NOW + 10, NOW + 10),
        (int(NOW) + 10, NOW + 10),
        (0, 0.0),
        ("2027-01-15T08:00:00Z", 1_800_000_000.0),
        ("2027-01-15T10:00:00+02:00", 1_800_000_000.0),
    ],
)
def test_fire_at(value: Any, expected: float) -> None:
    spec = parse_create({"fire_at": value, "url": URL}, now=NOW, limits=LIMITS)
    assert spec.fire_at == pytest.approx(expected)


@pytest.mark.parametrize(
    "value",
    [
        "2027-01-15T08:00:00",
        "2027-01-15",
        "soon",
        True,
        None,
        math.nan,
        math.inf,
        NOW + 1001,
        [NOW],
    ],
    ids=repr,
)
def test_bad_fire_at(value: Any) -> None:
    with pytest.raises(ValidationFailed) as excinfo:
        parse_create({"fire_at": value, "url": URL}, now=NOW, limits=LIMITS)
    assert fields_of(excinfo) == ["fire_at"]


@pytest.mark.parametrize("durations", [{"hours": 0}, {"minutes": 0}, {"seconds": 0}])
def test_fire_at_excludes_durations(durations: dict[str, int]) -> None:
    with pytest.raises(ValidationFailed):
        parse_create({"fire_at": NOW, "url": URL, **durations}, now=NOW, limits=LIMITS)


@pytest.mark.parametrize(
    "url",
    [
        "/x",
        "ftp://a.example",
        "http://",
        "http:///x",
        "https://a.example/ x",
        "https://a.example/\x00",
        "https://a.example:99999",
        "https://a.example/" + "x" * 100,
        None,
        5,
    ],
    ids=repr,
)
def test_bad_urls(url: Any) -> None:
    with pytest.raises(ValidationFailed) as excinfo:
        parse_create({"seconds": 1, "url": url}, now=NOW, limits=LIMITS)
    assert fields_of(excinfo) == ["url"]


def test_url_at_the_length_limit() -> None:
    url = "https://a.example/" + "x" * (100 - len("https://a.example/"))
    assert parse_create({"seconds": 1, "url": url}, now=NOW, limits=LIMITS).url == url


def test_batch_prefixes_fields_and_keeps_order() -> None:
    specs = parse_batch(
        {"timers": [{"seconds": i, "url": f"{URL}/{i}"} for i in range(3)]},
        now=NOW,
        limits=LIMITS,
        max_items=3,
    )
    assert [s.url for s in specs] == [f"{URL}/{i}" for i in range(3)]
    with pytest.raises(ValidationFailed) as excinfo:
        parse_batch(
            {"timers": [{"seconds": 0, "url": URL}, {"url": "x", "seconds": -1}, 7]},
            now=NOW,
            limits=LIMITS,
            max_items=3,
        )
    assert fields_of(excinfo) == ["timers[1].seconds", "timers[1].url", "timers[2]"]


@pytest.mark.parametrize("items", [[], [{"url": URL}] * 4])
def test_batch_size(items: list[Any]) -> None:
    with pytest.raises(ValidationFailed) as excinfo:
        parse_batch({"timers": items}, now=NOW, limits=LIMITS, max_items=3)
    assert fields_of(excinfo) == ["timers"]


def test_patch() -> None:
    assert parse_patch({"url": URL}, now=NOW, limits=LIMITS).fire_at is None
    spec = parse_patch({"seconds": 5}, now=NOW, limits=LIMITS)
    assert spec.url is None
    assert spec.fire_at == NOW + 5
    with pytest.raises(ValidationFailed):
        parse_patch({}, now=NOW, limits=LIMITS)
    with pytest.raises(ValidationFailed):
        parse_patch({"other": 1}, now=NOW, limits=LIMITS)


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=30)
    | st.sampled_from([URL, "2027-01-15T08:00:00Z", "2027-01-15T08:00:00"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=10,
)
BODY = st.dictionaries(
    st.sampled_from(["hours", "minutes", "seconds", "fire_at", "url", "x"]), JSON, max_size=5
)


def _outcome(parse: Any, body: Any) -> str:
    """Run one parser; return "ok" or the error class name, letting anything else escape."""
    try:
        spec = parse(body)
    except BadRequest:
        return "BadRequest"
    except ValidationFailed as exc:
        return "ValidationFailed" if exc.errors else "ValidationFailed without errors"
    if spec is not None and getattr(spec, "fire_at", None) is not None:
        assert math.isfinite(spec.fire_at)
        assert spec.fire_at - NOW <= LIMITS.max_delay_s
    return "ok"


@settings(max_examples=150, database=None, deadline=None)
@given(body=BODY | JSON)
def test_any_json_is_accepted_or_rejected_cleanly(body: Any) -> None:
    outcomes = {
        _outcome(lambda b: parse_create(b, now=NOW, limits=LIMITS), body),
        _outcome(lambda b: parse_patch(b, now=NOW, limits=LIMITS), body),
        _outcome(lambda b: parse_batch({"timers": [b]}, now=NOW, limits=LIMITS, max_items=3), body),
    }
    assert outcomes <= {"ok", "BadRequest", "ValidationFailed"}


def test_a_url_shared_by_batch_items_is_judged_once_but_reported_for_each() -> None:
    checked: list[str] = []

    def host_check(host: str) -> str | None:
        checked.append(host)
        return "denied" if host == "bad.example" else None

    limits = BodyLimits(max_delay_s=1000.0, max_url_length=100, host_check=host_check)
    good, bad = "http://ok.example/h", "http://bad.example/h"
    items = [{"url": u, "seconds": 1} for u in (good, bad, good, bad, bad)]
    with pytest.raises(ValidationFailed) as caught:
        parse_batch({"timers": items}, now=0.0, limits=limits, max_items=10)
    assert [e.field for e in caught.value.errors] == [
        "timers[1].url",
        "timers[3].url",
        "timers[4].url",
    ]
    assert sorted(checked) == ["bad.example", "ok.example"]
    specs = parse_batch({"timers": items[::2][:2]}, now=0.0, limits=limits, max_items=10)
    assert [s.url for s in specs] == [good, good]


@pytest.mark.parametrize(
    ("body", "field", "hint"),
    [
        ({"secs": 30}, "secs", "seconds"),
        ({"Seconds": 30}, "Seconds", "seconds"),
        ({"minute": 1}, "minute", "minutes"),
        ({"hour": 1}, "hour", "hours"),
        ({"fireAt": NOW}, "fireAt", "fire_at"),
        ({"seconds": 1, "uri": URL}, "uri", "url"),
    ],
)
def test_a_near_miss_is_named_with_a_hint(body: dict[str, Any], field: str, hint: str) -> None:
    for parse in (parse_create, parse_patch):
        with pytest.raises(ValidationFailed) as excinfo:
            parse({"url": URL, **body}, now=NOW, limits=LIMITS)
        (error,) = [e for e in excinfo.value.errors if e.field == field]
        assert error.message.endswith(f"did you mean {hint}?")
    with pytest.raises(ValidationFailed) as excinfo:
        parse_batch({"timers": [{"url": URL, **body}]}, now=NOW, limits=LIMITS, max_items=3)
    assert f"timers[0].{field}" in fields_of(excinfo)


def test_a_create_must_say_when() -> None:
    with pytest.raises(ValidationFailed) as excinfo:
        parse_create({"url": URL}, now=NOW, limits=LIMITS)
    assert fields_of(excinfo) == ["body"]
    with pytest.raises(ValidationFailed) as excinfo:
        parse_batch({"timers": [{"url": URL}]}, now=NOW, limits=LIMITS, max_items=3)
    assert fields_of(excinfo) == ["timers[0]"]
    assert parse_create({"seconds": 0, "url": URL}, now=NOW, limits=LIMITS).fire_at == NOW


def test_a_flood_of_unknown_fields_is_reported_in_bounded_space() -> None:
    body = {f"field{i}": i for i in range(5000)}
    with pytest.raises(ValidationFailed) as excinfo:
        parse_create({"seconds": 1, "url": URL, **body}, now=NOW, limits=LIMITS)
    errors = excinfo.value.errors
    assert len(errors) == 21
    assert errors[-1] == FieldError("body", "has 4980 more unknown fields")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (315_576_000, "10 years"),
        (1000, "16 minutes 40 seconds"),
        (86_400, "1 day"),
        (90_061.5, "1 day 1 hour 1 minute 1.5 seconds"),
        (0, "0 seconds"),
    ],
)
def test_human_duration(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


def test_limit_messages_name_the_maximum_in_human_units() -> None:
    limits = BodyLimits(max_delay_s=315_576_000, max_url_length=100)
    for body in ({"seconds": 4e8}, {"hours": 87_661}, {"fire_at": NOW + 4e8}):
        with pytest.raises(ValidationFailed) as excinfo:
            parse_create({**body, "url": URL}, now=NOW, limits=limits)
        (error,) = excinfo.value.errors
        assert error.field == next(iter(body))
        assert "10 years (315576000 s)" in error.message
        assert "e+" not in error.message


@pytest.mark.parametrize(
    "host", ["999.999.999.999", "1.2.3.4.5", "256.0.0.1", "a.example.123", "0x1g.0x2"]
)
def test_a_host_ending_in_a_number_must_be_an_ipv4_address(host: str) -> None:
    with pytest.raises(ValidationFailed) as excinfo:
        parse_create({"seconds": 1, "url": f"http://{host}/"}, now=NOW, limits=LIMITS)
    assert fields_of(excinfo) == ["url"]


@pytest.mark.parametrize(
    "host", ["1.2.3.4", "127.1", "a.example", "xn--bcher-kva.example", "[::ffff:1.2.3.4]"]
)
def test_other_hosts_pass_the_body_rules(host: str) -> None:
    url = f"http://{host}/"
    assert parse_create({"seconds": 1, "url": url}, now=NOW, limits=LIMITS).url == url
