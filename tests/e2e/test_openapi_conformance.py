"""schemathesis, run from a real daemon's /openapi.json, finds no request the document and the
handlers disagree on: no 5xx, only documented statuses and content types, answers that match
their schemas, and no schema-valid request refused with a 4xx (positive_data_acceptance).

Loopback only: the daemon listens on 127.0.0.1, and every webhook URL a generated body holds
is re-aimed at a receiver on 127.0.0.1 (its path and query kept), so no timer that fires
during the run looks up or reaches another host. Bounded: a few examples per operation.
"""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import Receiver
from tests.e2e.conftest import DaemonStarter

pytestmark = pytest.mark.e2e

EXAMPLES_PER_OPERATION = 150
"""About 40 s for the dozen operations on a loaded 2-core machine."""
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    positive_data_acceptance,
]


def _aimed_at(url: Any, receiver: str) -> Any:
    """Keep a generated URL's path and query, on the loopback receiver's host and port."""
    if not isinstance(url, str):
        return url
    parts = urlsplit(url)
    return urlunsplit(("http", urlsplit(receiver).netloc, parts.path, parts.query, ""))


def _keep_local(case: Any, receiver: str, keys: itertools.count[int]) -> None:
    """Re-aim every webhook URL of the body; make each Idempotency-Key unique.

    A key sent again with another body is a 422 by design, which no schema can say; keys
    made unique keep the generated key's characters and still match its pattern.
    """
    body = case.body
    if isinstance(body, dict):
        items = body.get("timers")
        for item in [body, *(items if isinstance(items, list) else [])]:
            if isinstance(item, dict) and "url" in item:
                item["url"] = _aimed_at(item["url"], receiver)
    headers = case.headers or {}
    if "Idempotency-Key" in headers:
        headers["Idempotency-Key"] = f"{headers['Idempotency-Key'][:200]}-{next(keys)}"


def _run_schemathesis(base: str, receiver: str) -> tuple[list[str], dict[str, int]]:
    """Run every operation's examples; return the failures and the calls per operation."""
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    keys = itertools.count()
    failures: list[str] = []
    calls: dict[str, int] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        calls[operation.label] = 0

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def check(case: Any) -> None:
            _keep_local(case, receiver, keys)
            calls[case.operation.label] += 1
            case.call_and_validate(base_url=base, checks=CHECKS, timeout=10)

        try:
            check()
        except Exception as exc:  # collect all operations' findings, then fail once
            failures.append(f"{operation.label}: {exc}")
    return failures, calls


async def test_the_document_and_the_handlers_agree(
    daemon: DaemonStarter, receiver: Receiver, tmp_path: Path
) -> None:
    d = await daemon(tmp_path / "t.db")
    assert urlsplit(d.url).hostname == "127.0.0.1"
    failures, calls = await asyncio.to_thread(_run_schemathesis, d.url, receiver.url)
    assert not failures, "\n\n".join(failures)
    print(calls)
    # every documented operation was exercised, the creates with several examples
    assert len(calls) >= 14
    assert all(count > 0 for count in calls.values()), calls
    assert calls["POST /timers"] >= 10, calls
    assert receiver.hits, "no generated timer fired at the loopback receiver"
