"""audit tail: the latest events merged, then new ones as they arrive."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from trustloop.audit.chain import AuditLog
from trustloop.audit.tail import Sources, tail

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

JTI = "5b1e8c0e-8d7b-4b7e-9f3a-2f7d1c9e4a10"
ROLE = "obo_5b1e8c0e8d7b4b7e9f3a2f7d1c9e4a10"


def _pg_line(stamp: str, user: str, message: str) -> str:
    record = {"timestamp": stamp, "user": user, "error_severity": "LOG"}
    return json.dumps({**record, "message": message}) + "\n"


def _stop_after(polls: int) -> Callable[[], bool]:
    count = iter(range(polls + 1))
    return lambda: next(count, polls) >= polls


def test_latest_events_of_every_source_are_merged_by_time(tmp_path: Path) -> None:
    audit, pg = tmp_path / "audit", tmp_path / "pg"
    pg.mkdir()
    idp = AuditLog(audit / "idp.jsonl", "idp")
    mcp = AuditLog(audit / "mcp.jsonl", "mcp")
    idp.append("token_exchanged", jti=JTI)
    (pg / "postgresql-1.json").write_text(
        _pg_line("2000-01-01 00:00:00.000 UTC", ROLE, "disconnection: ...")
    )
    mcp.append("tool_call", jti=JTI, outcome="ok")

    events = list(tail(Sources(audit, pg), count=2))

    assert [(e.system, e.event) for e in events] == [
        ("idp", "token_exchanged"),
        ("mcp", "tool_call"),
    ]  # the 2000 postgres line is older than both: not among the latest two


def test_follow_yields_appended_lines_and_files_that_appear_later(
    tmp_path: Path,
) -> None:
    audit, pg = tmp_path / "audit", tmp_path / "pg"
    idp = AuditLog(audit / "idp.jsonl", "idp")
    idp.append("signed_in", jti="old")

    def rotate() -> None:
        pg.mkdir()
        (pg / "postgresql-2.json").write_text(
            _pg_line("2026-12-03 16:17:31.041 UTC", ROLE, "disconnection: x")
            + _pg_line("2026-12-03 16:17:31.042 UTC", "trustloop_lease_engine", "x")
        )

    steps: list[Callable[[], object]] = [
        lambda: idp.append("token_exchanged", jti=JTI),
        lambda: AuditLog(audit / "runtime.jsonl", "runtime").append(
            "invocation", obo_jtis=[JTI], outcome="answered"
        ),
        rotate,
    ]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        if steps:
            steps.pop(0)()

    stream = tail(
        Sources(audit, pg), count=5, follow=True, sleep=sleep, stop=_stop_after(8)
    )
    events = list(stream)

    assert [(e.system, e.event, e.jti) for e in events] == [
        ("idp", "signed_in", "old"),
        ("idp", "token_exchanged", JTI),
        ("runtime", "invocation", JTI),
        ("postgres", "disconnection", JTI),
    ]  # the lease engine's housekeeping line is left out
    assert slept


def test_a_partial_line_waits_for_its_newline(tmp_path: Path) -> None:
    audit = tmp_path / "audit"
    audit.mkdir()
    path = audit / "mcp.jsonl"
    line = json.dumps({"time": "2026-12-03T16:17:31+00:00", "event": "tool_call"})
    path.write_text("")
    steps = [
        lambda: path.write_text(line[:10]),
        lambda: path.write_text(line + "\n"),
    ]

    def sleep(seconds: float) -> None:
        if steps:
            steps.pop(0)()

    events = list(tail(Sources(audit), follow=True, sleep=sleep, stop=_stop_after(5)))

    assert [(e.system, e.event, e.line) for e in events] == [("mcp", "tool_call", 1)]


def test_a_truncated_file_is_read_again_from_its_start(tmp_path: Path) -> None:
    audit = tmp_path / "audit"
    log = AuditLog(audit / "vault.jsonl", "vault")
    for _ in range(3):
        log.append("request", type="request")
    fresh = json.dumps({"time": "2026-12-03T16:17:31+00:00", "event": "lease_expired"})
    steps = [lambda: (audit / "vault.jsonl").write_text(fresh + "\n")]

    def sleep(seconds: float) -> None:
        if steps:
            steps.pop(0)()

    events = list(
        tail(Sources(audit), count=0, follow=True, sleep=sleep, stop=_stop_after(4))
    )

    assert [(e.event, e.outcome, e.line) for e in events] == [
        ("lease_expired", "revoked", 1)
    ]


def test_without_follow_the_generator_ends_after_the_backlog(tmp_path: Path) -> None:
    audit = tmp_path / "audit"
    AuditLog(audit / "idp.jsonl", "idp").append("signed_in")

    def never(seconds: float) -> None:
        raise AssertionError("tail without follow must not sleep")

    assert len(list(tail(Sources(audit), sleep=never))) == 1
    assert list(tail(Sources(tmp_path / "missing"))) == []
