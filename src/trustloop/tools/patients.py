"""The healthcare tools: each one is a single run of the four-step rhythm.

Results follow docs/contracts.md: a JSON object as structured content and as text.
A refusal is a tool error (``isError``) whose text starts with the OAuth error code
(``access_denied: ...``, ``invalid_token: sign in again``). Arguments are checked
before any identity call, and each call reads its own request's bearer token: the
server is stateless and keeps no token between calls.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.mcpserver import Context
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field
from pydantic_core import to_jsonable_python

from trustloop.identity.rar import patient_read, roster_read
from trustloop.identity.rhythm import ToolCallError, sign_in_again
from trustloop.records import queries

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

    from trustloop.identity.rhythm import Rhythm
    from trustloop.identity.step_up import Progress

Payload = dict[str, Any]
# FHIR R4 datatypes, "id".
FHIR_ID_PATTERN = r"^[A-Za-z0-9\-.]{1,64}$"
_FHIR_ID = re.compile(FHIR_ID_PATTERN)

# Advertised in the input schema, enforced by read_patient_record itself so that
# a bad id gets an ``invalid_request`` refusal rather than pydantic's report.
PatientId = Annotated[
    str,
    Field(
        description="FHIR Patient id, as list_my_patients returns it",
        json_schema_extra={"pattern": FHIR_ID_PATTERN},
    ),
]
# The schema clients see is a JSON object; the body builds the result itself.
ToolResult = Annotated[CallToolResult, Payload]
READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)


def current_bearer() -> str | None:
    """The verified bearer token of the request being served (never stored)."""
    verified = get_access_token()
    return verified.token if verified is not None else None


class PatientTools:
    """The tool bodies, apart from MCP so tests can call them directly."""

    def __init__(
        self, rhythm: Rhythm, bearer: Callable[[], str | None] = current_bearer
    ) -> None:
        self._rhythm = rhythm
        self._bearer = bearer

    async def list_my_patients(self) -> Payload:
        """The clinician's care-team roster (detail ``care_team_roster`` read)."""
        token = self._token()
        async with self._rhythm.call(token, roster_read, tool="list_my_patients") as c:
            patients = await c.run(queries.list_roster)
        return {"patients": patients, "obo_jti": c.jti}

    async def read_patient_record(
        self, patient_id: str, progress: Progress | None = None
    ) -> Payload:
        """One patient's chart (detail ``patient_record`` read on that patient).

        A restricted patient needs the clinician's step-up; ``progress`` hears
        "approve on your device" while it waits.
        """
        if not _FHIR_ID.fullmatch(patient_id):
            raise ToolCallError(
                "invalid_request", "patient_id must be a FHIR id ([A-Za-z0-9-.]{1,64})"
            )
        detail = patient_read(patient_id)
        token = self._token()

        call = self._rhythm.call(
            token, detail, tool="read_patient_record", progress=progress
        )
        async with call as c:
            chart = await c.run(lambda conn: queries.read_chart(conn, patient_id))
            if chart is None:
                raise ToolCallError("not_found", f"no record for {detail.identifier}")
        return {**chart, "obo_jti": c.jti}

    def _token(self) -> str:
        token = self._bearer()
        if not token:
            raise sign_in_again()
        return token


def register(server: MCPServer, rhythm: Rhythm) -> PatientTools:
    """Add the patient tools to ``server``."""
    tools = PatientTools(rhythm)

    @server.tool(
        name="list_my_patients",
        description="List the patients on the signed-in clinician's care team.",
        annotations=READ_ONLY,
    )
    async def list_my_patients() -> ToolResult:
        return await respond(tools.list_my_patients)

    @server.tool(
        name="read_patient_record",
        description=(
            "Read one patient's chart: demographics, conditions, medications and "
            "the latest observation per code, as FHIR resources."
        ),
        annotations=READ_ONLY,
    )
    async def read_patient_record(
        patient_id: PatientId, ctx: Context[Any, Any]
    ) -> ToolResult:
        async def progress(elapsed: float, total: float, message: str) -> None:
            await ctx.report_progress(elapsed, total, message)

        return await respond(lambda: tools.read_patient_record(patient_id, progress))

    return tools


async def respond(body: Callable[[], Awaitable[Payload]]) -> CallToolResult:
    """A tool body's payload as a result, or its refusal as a tool error."""
    try:
        payload = to_jsonable_python(await body())
    except ToolCallError as exc:
        return CallToolResult(
            content=[TextContent(type="text", text=str(exc))], is_error=True
        )
    text = json.dumps(payload, ensure_ascii=False)
    return CallToolResult(
        content=[TextContent(type="text", text=text)], structured_content=payload
    )
