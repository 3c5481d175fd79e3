"""``GET /v1.0/events``: the IdP's audit events in IBM Verify's event API shape.

Follows IBM Verify's public guide "Pulling activity and event data" and the
parameters its users document for the same endpoint (the API reference itself
was not at hand); where the guide is silent, the choice is ours and says so.

Query parameters (all optional):

- ``event_type``: comma-separated types, each optionally double-quoted
  (``event_type="token","authentication"``). As in Verify, the default is
  ``authentication``, ``management`` and ``sso``; ``all_events=yes`` selects every
  type. This IdP writes ``authentication`` (``signed_in``, ``sign_in_failed``) and
  ``token`` (``token_introspected``, ``token_exchanged``, ``exchange_denied``,
  ``token_revoked``); ``session_logged_out`` is ``authentication``.
- ``from``, ``to``: epoch milliseconds, both inclusive; default the last 24 hours.
- ``size``: events per page, 1 to 10,000 (Verify's cap), default 50.
- ``sort_order``: ``desc`` (default, newest first) or ``asc``.
- ``after``: ``"<time>","<id>"``, the ``search_after`` of the previous page
  (``after_time`` with ``after_id`` is read the same way).

The answer is ``{"response": {"events": {"search_after": {...}, "events": [...]}}}``.
``search_after`` carries ``total_events`` (all events that match the filters),
``max_size_limit`` (our reading: ``"true"`` when more events follow this page) and
the ``time`` and ``id`` of the page's last event. Each event carries Verify's base
fields (``id``, ``time`` in epoch ms, ``event_type``, ``servicename``,
``correlationid`` = the record's ``jti``, ``year``, ``month``, ``day``) and ``data``:
the audit record's own fields, with ``action`` (its event name) and ``result``
(``success`` or ``failure``).

Paging is stable: ``id`` is the SHA-256 of the audit line (fixed once written),
events are ordered by ``time`` and, within a millisecond, by their place in the
append-only file, and ``after`` names a position in that order (the event with
that ``id``), not an offset, so events written meanwhile never shift a later page.
An ``id`` this file does not hold falls back to the events strictly beyond
``time``.

Authentication, never optional: ``Authorization: Bearer <JWT-SVID>`` of our trust
domain with ``aud`` = the issuer, validated as the introspection client assertion
is; anything else is 401 with an RFC 6750 §3 ``WWW-Authenticate`` challenge.
Authorization: only the auditor workload (``Settings.auditor_spiffe_id``,
``spiffe://<trust domain>/auditor``, a SIEM forwarder) may read. The events say
which patients needed a step-up and who asked for whom, which the MCP server and
the agent runtime must not learn from here; any other workload's valid SVID is
403 ``insufficient_scope``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import anyio.to_thread

from trustloop.audit.chain import line_hash
from trustloop.devstack.idp.errors import NO_STORE, invalid_request
from trustloop.devstack.jwtcheck import JwtInvalidError

if TYPE_CHECKING:
    from pathlib import Path

    from trustloop.devstack.idp.client_auth import ClientAuthenticator
    from trustloop.devstack.jwtcheck import Clock

SERVICE_NAME = "trustloop-idp"
DEFAULT_TYPES = frozenset({"authentication", "management", "sso"})
DEFAULT_SIZE = 50
MAX_SIZE = 10_000
DAY_MS = 24 * 3600 * 1000
EVENT_TYPES = {
    "signed_in": "authentication",
    "sign_in_failed": "authentication",
    "token_introspected": "token",
    "token_exchanged": "token",
    "exchange_denied": "token",
    "token_revoked": "token",
    "session_logged_out": "authentication",
    "step_up_required": "authentication",
    "step_up_started": "authentication",
    "step_up_approved": "authentication",
    "step_up_denied": "authentication",
    "step_up_timed_out": "authentication",
}
_FAILURES = frozenset(
    {"sign_in_failed", "exchange_denied", "step_up_denied", "step_up_timed_out"}
)
_RECORD_ONLY = ("time", "system", "event", "prev_hash")
_QUOTED_LIST = re.compile(r'^\s*"?([^",]*)"?\s*$')


class Unauthorized(Exception):
    """No valid bearer JWT-SVID: RFC 6750 §3 ``invalid_token``."""


class Forbidden(Exception):
    """A valid JWT-SVID of a workload that may not read: ``insufficient_scope``."""


@dataclass(frozen=True)
class Query:
    """One page request, read from the query string."""

    types: frozenset[str] | None  # None: every type
    start_ms: int
    end_ms: int
    size: int
    descending: bool
    after: tuple[int, str] | None


class EventsApi:
    """Serves the IdP's own audit file (``idp.jsonl``) as Verify events."""

    def __init__(
        self,
        path: Path,
        *,
        clients: ClientAuthenticator,
        readers: frozenset[str],
        clock: Clock = time.time,
    ) -> None:
        self._path = path
        self._clients = clients
        self._readers = readers
        self._clock = clock

    async def __call__(
        self, authorization: str | None, params: Mapping[str, str]
    ) -> dict[str, Any]:
        """The page; :class:`Unauthorized`, :class:`Forbidden` or a 400 problem."""
        await self._authenticate(authorization)
        query = parse_query(params, now_ms=int(self._clock() * 1000))
        events = await anyio.to_thread.run_sync(self._events)
        return page(events, query)

    async def _authenticate(self, authorization: str | None) -> None:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized
        try:
            workload = await self._clients.svid(token.strip())
        except JwtInvalidError as exc:
            raise Unauthorized from exc
        if workload not in self._readers:
            raise Forbidden

    def _events(self) -> list[dict[str, Any]]:
        if not self._path.exists():
            return []
        with self._path.open("rb") as fh:
            return [e for raw in fh if (e := verify_event(raw)) is not None]


def verify_event(raw: bytes) -> dict[str, Any] | None:
    """One audit line as a Verify event; None for a line that is not a record."""
    try:
        record = json.loads(raw)
        when = datetime.fromisoformat(str(record["time"])).astimezone(UTC)
    except (ValueError, KeyError, TypeError):
        return None
    action = str(record.get("event", ""))
    data = {k: v for k, v in record.items() if k not in _RECORD_ONLY}
    failed = action in _FAILURES or record.get("active") is False
    data.update(action=action, result="failure" if failed else "success")
    return {
        "id": line_hash(raw),
        "time": int(when.timestamp() * 1000),
        "event_type": EVENT_TYPES.get(action, "management"),
        "servicename": SERVICE_NAME,
        "correlationid": record.get("jti"),
        "year": when.year,
        "month": when.month,
        "day": when.day,
        "data": data,
    }


def parse_query(params: Mapping[str, str], *, now_ms: int) -> Query:
    """Read and check the parameters; a bad one is ``invalid_request`` (400)."""
    types = None if params.get("all_events") == "yes" else DEFAULT_TYPES
    if "event_type" in params:
        types = frozenset(_quoted_list(params["event_type"]))
    end_ms = _int(params, "to", now_ms)
    start_ms = _int(params, "from", end_ms - DAY_MS)
    size = _int(params, "size", DEFAULT_SIZE)
    if not 1 <= size <= MAX_SIZE:
        raise invalid_request(f"size must be between 1 and {MAX_SIZE}")
    order = params.get("sort_order", "desc")
    if order not in ("asc", "desc"):
        raise invalid_request("sort_order must be asc or desc")
    return Query(types, start_ms, end_ms, size, order == "desc", _after(params))


def _quoted_list(value: str) -> list[str]:
    items = []
    for part in value.split(","):
        match = _QUOTED_LIST.match(part)
        if match is None or not match.group(1):
            raise invalid_request('event_type must be a list like "token","sso"')
        items.append(match.group(1))
    return items


def _int(params: Mapping[str, str], name: str, default: int) -> int:
    value = params.get(name)
    if value is None:
        return default
    try:
        return int(value.strip().strip('"'))
    except ValueError as exc:
        raise invalid_request(f"{name} must be an integer") from exc


def _after(params: Mapping[str, str]) -> tuple[int, str] | None:
    if "after" in params:
        parts = _quoted_list(params["after"])
        if len(parts) != 2:
            raise invalid_request('after must be "<time>","<id>"')
        time_part, id_part = parts
    elif "after_time" in params or "after_id" in params:
        time_part, id_part = params.get("after_time", ""), params.get("after_id", "")
    else:
        return None
    try:
        return int(time_part.strip('"')), id_part.strip('"')
    except ValueError as exc:
        raise invalid_request("the time of after must be epoch milliseconds") from exc


def page(events: list[dict[str, Any]], query: Query) -> dict[str, Any]:
    """One page of ``events`` (in file order) for ``query``, in Verify's shape."""
    matching = [e for e in events if _matches(e, query)]
    # Stable sort: events of the same millisecond keep their order in the file.
    matching.sort(key=lambda e: int(e["time"]), reverse=query.descending)
    if query.descending:
        _reverse_ties(matching)
    rest = _beyond(matching, query)
    chosen = rest[: query.size]

    search_after: dict[str, Any] = {
        "total_events": len(matching),
        "max_size_limit": "true" if len(rest) > len(chosen) else "false",
    }
    if chosen:
        search_after.update(time=str(chosen[-1]["time"]), id=chosen[-1]["id"])
    return {"response": {"events": {"search_after": search_after, "events": chosen}}}


def _reverse_ties(events: list[dict[str, Any]]) -> None:
    """Newest first also within one millisecond: later lines before earlier ones."""
    start = 0
    for end in range(1, len(events) + 1):
        if end == len(events) or events[end]["time"] != events[start]["time"]:
            events[start:end] = events[start:end][::-1]
            start = end


def _beyond(events: list[dict[str, Any]], query: Query) -> list[dict[str, Any]]:
    """The events after the ``after`` position: its ``id`` if known, else its time."""
    if query.after is None:
        return events
    after_time, after_id = query.after
    for index, event in enumerate(events):
        if event["id"] == after_id:
            return events[index + 1 :]
    if query.descending:
        return [e for e in events if int(e["time"]) < after_time]
    return [e for e in events if int(e["time"]) > after_time]


def _matches(event: dict[str, Any], query: Query) -> bool:
    if query.types is not None and event["event_type"] not in query.types:
        return False
    return query.start_ms <= int(event["time"]) <= query.end_ms


def forbidden_headers() -> dict[str, str]:
    """RFC 6750 §3.1: a valid token without the right to read events."""
    challenge = (
        'Bearer error="insufficient_scope",'
        ' error_description="only the auditor workload reads events"'
    )
    return {**NO_STORE, "WWW-Authenticate": challenge}


def unauthorized_headers() -> dict[str, str]:
    """RFC 6750 §3: the challenge for a missing or invalid bearer token."""
    challenge = 'Bearer error="invalid_token", error_description="JWT-SVID required"'
    return {**NO_STORE, "WWW-Authenticate": challenge}
