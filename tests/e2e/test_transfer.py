"""`timerd export` and `timerd import` move 100k timers between databases unchanged."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.e2e.conftest import BULK_COUNT, CliRunner, DaemonStarter

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
    good = {
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
    }
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
