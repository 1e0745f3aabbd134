"""`timerd export` and `timerd import` move 100k timers between databases unchanged."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import Hit, Receiver
from tests.e2e.conftest import (
    BULK_COUNT,
    CliRunner,
    DaemonStarter,
    create_timer,
    get_attempts,
    get_timer,
)
from tests.waiting import eventually

pytestmark = pytest.mark.e2e


async def test_export_import_round_trip_of_100k_timers(
    bulk_mixed_db: Path, cli: CliRunner, daemon: DaemonStarter, tmp_path: Path
) -> None:
    source = tmp_path / "a.db"
    shutil.copyfile(bulk_mixed_db, source)
    original = source.read_bytes()
    dump_a = tmp_path / "a.jsonl"
    (await cli("export", "--db", source, stdout_file=dump_a)).ok()
    lines_a = dump_a.read_text().splitlines()
    assert len(lines_a) == BULK_COUNT
    statuses = {json.loads(line)["status"] for line in lines_a[:10]}
    assert statuses == {"pending", "retrying", "fired", "failed", "cancelled"}
    assert source.read_bytes() == original, "export --db must not write to the database"

    target = tmp_path / "sub" / "b.db"  # import creates the database (and its folder)
    imported = (await cli("import", dump_a, "--db", target)).ok()
    assert imported.stdout.strip() == f"imported {BULK_COUNT}, skipped 0"

    dump_b = tmp_path / "b.jsonl"
    (await cli("export", "--db", target, stdout_file=dump_b)).ok()
    assert dump_b.read_text().splitlines() == lines_a

    again = (await cli("import", dump_a, "--db", target)).ok()
    assert again.stdout.strip() == f"imported 0, skipped {BULK_COUNT}"

    # a daemon holds the target: import refuses with one line, and changes nothing
    d = await daemon(target)
    small = tmp_path / "one.jsonl"
    fresh = dict(json.loads(lines_a[0]), id="NotInTheDatabaseYet000")
    small.write_text(json.dumps(fresh) + "\n")
    line = (await cli("import", small, "--db", target)).one_error_line()
    assert "in use" in line
    assert str(target) in line
    assert await d.stop() == 0
    listed = (await cli("list", "--db", target, "--json", "--limit", "1")).ok().json()
    assert listed[0]["id"] == json.loads(lines_a[0])["id"]
    shown = await cli("show", "NotInTheDatabaseYet000", "--db", target)
    assert shown.rc == 1


async def test_import_of_a_file_with_a_bad_line_imports_nothing(
    cli: CliRunner, tmp_path: Path
) -> None:
    good = {k: v for k, v in GOOD_LINE.items() if k != "history"}  # a line of an older export
    lines = [
        json.dumps(good),
        json.dumps({**good, "id": "GoodTimer0000000000002"}),
        json.dumps({**good, "id": "GoodTimer0000000000003", "status": "snoozing"}),
        json.dumps({**good, "id": "GoodTimer0000000000004"}),
    ]
    dump = tmp_path / "bad.jsonl"
    dump.write_text("\n".join(lines) + "\n")
    db = tmp_path / "x.db"

    line = (await cli("import", dump, "--db", db)).one_error_line()
    assert "line 3" in line

    # nothing imported: no database at all, or one without timers
    if db.exists():
        assert (await cli("list", "--db", db, "--json")).ok().json() == []

    # also from stdin, and with a line that is not JSON at all
    lines[2] = "{not json"
    piped = await cli("import", "-", "--db", db, stdin=("\n".join(lines) + "\n").encode())
    assert "line 3" in piped.one_error_line()
    if db.exists():
        assert (await cli("list", "--db", db, "--json")).ok().json() == []


async def _wait_for(
    http: aiohttp.ClientSession, base: str, tid: str, status: str, attempts: int
) -> None:
    """Poll until the timer has `status` and `attempts` history entries (deadline: 20 s)."""
    seen: list[Any] = []

    async def reached() -> bool:
        seen[:] = [await get_timer(http, base, tid), await get_attempts(http, base, tid)]
        return bool(seen[0]["status"] == status and len(seen[1]) == attempts)

    await eventually(reached, f"timer {tid} to be {status} with {attempts} attempts", 20)


async def test_export_then_import_keeps_every_field_and_the_delivery_history(
    cli: CliRunner,
    daemon: DaemonStarter,
    http: aiohttp.ClientSession,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    failures = {"flaky": 2, "down": 99}

    async def respond(hit: Hit) -> web.StreamResponse:
        kind = hit.path.split("/")[2]
        if failures.get(kind, 0) > 0:
            failures[kind] -= 1
            return web.Response(status=503, text="busy")
        return web.Response(status=204)

    receiver.respond = respond
    source = tmp_path / "a.db"
    a = await daemon(source, "--max-attempts", "3")
    flaky = await create_timer(http, a.url, seconds=0, url=f"{receiver.url}/flaky")
    down = await create_timer(http, a.url, seconds=0, url=f"{receiver.url}/down")
    later = await create_timer(http, a.url, hours=5, url=f"{receiver.url}/later?k=v")
    gone = await create_timer(http, a.url, seconds=0.5, url=f"{receiver.url}/gone")
    async with http.delete(f"{a.url}/timers/{gone}") as resp:
        assert resp.status == 200
    await _wait_for(http, a.url, flaky, "fired", 3)
    await _wait_for(http, a.url, down, "failed", 3)
    ids = [flaky, down, later, gone]
    before = {tid: await get_timer(http, a.url, tid) for tid in ids}
    history = {tid: await get_attempts(http, a.url, tid) for tid in ids}
    assert await a.stop() == 0

    dump = tmp_path / "a.jsonl"
    (await cli("export", "--db", source, stdout_file=dump)).ok()
    target = tmp_path / "b.db"
    assert (
        await cli("import", dump, "--db", target)
    ).ok().stdout.strip() == "imported 4, skipped 0"
    dump_b = tmp_path / "b.jsonl"
    (await cli("export", "--db", target, stdout_file=dump_b)).ok()
    assert dump_b.read_text() == dump.read_text()
    lines = {json.loads(line)["id"]: json.loads(line) for line in dump.read_text().splitlines()}
    assert [len(lines[tid]["history"]) for tid in ids] == [3, 3, 0, 0]

    b = await daemon(target, "--max-attempts", "3")
    for tid in ids:
        after = await get_timer(http, b.url, tid)
        for name, value in before[tid].items():
            if name != "time_left":
                assert after[name] == value, (tid, name)
        assert await get_attempts(http, b.url, tid) == history[tid], tid
    # the imported history goes on: a new attempt comes after the three imported ones
    failures["down"] = 0
    async with http.post(f"{b.url}/timers/{down}/fire") as resp:
        assert resp.status == 202
    await _wait_for(http, b.url, down, "fired", 4)
    assert (await get_attempts(http, b.url, down))[:3] == history[down]


GOOD_LINE: dict[str, Any] = {
    "id": "GoodTimer0000000000001",
    "url": "http://127.0.0.1:9/hook",
    "fire_at": 2_000_000_000.0,
    "created_at": 1_700_000_000.0,
    "status": "pending",
    "attempts": 0,
    "updated_at": 1_700_000_000.0,
    "fired_at": None,
    "last_status_code": None,
    "last_error": None,
    "next_attempt_at": 2_000_000_000.0,
    "history": [],
}


@pytest.mark.parametrize(
    ("bad_line", "says"),
    [
        ('"fire_at":NaN', "NaN"),
        ('"fire_at":Infinity', "Infinity"),
        ('"fire_at":-Infinity', "Infinity"),
        ('"fire_at":1e400', "fire_at"),
        ('"next_attempt_at":1e400', "next_attempt_at"),
        ('"attempts":-1', "attempts"),
        ('"url":"http://a.example/x\\r\\nHost: evil"', "url"),
        ('"url":"http://999.999.999.999/hook"', "url"),
        ('"url":"ftp://a.example/"', "url"),
        ('"secs":30', "secs"),
        ('"last_status_code":99', "last_status_code"),
        (
            '"history":[{"attempt":1,"started_at":NaN,"duration_ms":1,"status_code":null,'
            '"error":null,"outcome":"retry"}]',
            "NaN",
        ),
        (
            '"history":[{"attempt":0,"started_at":1,"duration_ms":-1,"status_code":null,'
            '"error":null,"outcome":"won"}]',
            "history[0].attempt",
        ),
    ],
    ids=repr,
)
async def test_import_refuses_what_the_api_refuses(
    cli: CliRunner, tmp_path: Path, bad_line: str, says: str
) -> None:
    good = json.dumps(GOOD_LINE, separators=(",", ":"))
    other = good.replace("0000000001", "0000000002")
    field = bad_line.split(":", 1)[0]
    # the bad value replaces the field in the third line (or is added, for a new field)
    third = good.replace("0000000001", "0000000003")
    start = third.find(field + ":")
    if start >= 0:
        end = third.find(',"', start)
        end = len(third) - 1 if end < 0 else end  # the last field: up to the closing brace
        bad = third[:start] + bad_line + third[end:]
    else:
        bad = third[:-1] + "," + bad_line + "}"
    dump = tmp_path / "bad.jsonl"
    dump.write_text("\n".join([good, other, bad, good.replace("0000000001", "0000000004")]) + "\n")
    db = tmp_path / "x.db"
    line = (await cli("import", dump, "--db", db)).one_error_line()
    assert "line 3" in line
    assert says in line
    if db.exists():
        assert (await cli("list", "--db", db, "--json")).ok().json() == []
    # the good lines alone do import
    dump.write_text("\n".join([good, other]) + "\n")
    assert (await cli("import", dump, "--db", db)).ok().stdout.strip() == "imported 2, skipped 0"
