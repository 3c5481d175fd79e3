"""The tool set of this release (docs/contracts.md, "Tools"), and its MCP wiring.

Each tool is a :class:`ToolSpec`: a name, a description for the model, a strict
arguments model (:mod:`trustloop.tools.inputs`) and a body that runs the
four-step rhythm once. :class:`ClinicalTools` checks the raw arguments before
anything else happens, so a bad input is ``invalid_request`` before any identity
call. :func:`mcp_tools` registers every spec with mcp so that ``tools/list``
advertises the arguments model's JSON Schema and the raw arguments reach
:meth:`ClinicalTools.call` untouched (mcp's own coercion would accept what the
schema refuses, and would echo refused values in its errors).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.tools import Tool
from mcp.types import ToolAnnotations

from trustloop.identity.rhythm import ToolCallError
from trustloop.tools import charts, inputs, labs, medications, notes, roster
from trustloop.tools.caller import Caller, current_bearer
from trustloop.tools.results import Payload, ToolResult, respond

if TYPE_CHECKING:
    from trustloop.identity.rhythm import Rhythm
    from trustloop.identity.step_up import Progress

Args = TypeVar("Args", bound=inputs.Arguments)

READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)
ADDS = ToolAnnotations(
    read_only_hint=False,
    destructive_hint=False,
    idempotent_hint=False,
    open_world_hint=False,
)
CHANGES = ToolAnnotations(
    read_only_hint=False,
    destructive_hint=True,
    idempotent_hint=False,
    open_world_hint=False,
)


@dataclass(frozen=True)
class ToolSpec(Generic[Args]):
    name: str
    description: str
    arguments: type[Args]
    body: Callable[[Caller, Args, Progress | None], Awaitable[Payload]]
    annotations: ToolAnnotations


SPECS: tuple[ToolSpec[Any], ...] = (
    ToolSpec(
        "list_my_patients",
        "List the patients on the signed-in clinician's care team.",
        inputs.NoArguments,
        roster.list_my_patients,
        READ_ONLY,
    ),
    ToolSpec(
        "find_patient",
        "Find patients on the clinician's care team by name (case and accents "
        "ignored; each word must start a word of the name). Several matches are "
        "a choice for the clinician, not a guess.",
        inputs.FindPatientArguments,
        roster.find_patient,
        READ_ONLY,
    ),
    ToolSpec(
        "read_patient_record",
        "Read one patient's chart as FHIR R4 resources: demographics, active "
        "conditions, current medications, the 5 most recent encounters, the latest "
        "vital sign or lab result per code, and notes (newest first).",
        inputs.PatientArguments,
        charts.read_patient_record,
        READ_ONLY,
    ),
    ToolSpec(
        "get_lab_results",
        "A patient's observations (FHIR R4), newest first, by LOINC code and/or "
        "category and an optional date range (since and until, both included).",
        inputs.LabArguments,
        labs.get_lab_results,
        READ_ONLY,
    ),
    ToolSpec(
        "write_clinical_note",
        "Add a note to a patient's chart. The clinician approves the exact text on "
        "their device first; a declined approval writes nothing.",
        inputs.NoteArguments,
        notes.write_clinical_note,
        ADDS,
    ),
    ToolSpec(
        "update_medication",
        "Change the status and/or the dosage of one MedicationRequest of a "
        "patient (physicians only). The clinician approves the exact change on "
        "their device first; the previous version is kept.",
        inputs.MedicationArguments,
        medications.update_medication,
        CHANGES,
    ),
)
BY_NAME = {spec.name: spec for spec in SPECS}


class ClinicalTools:
    """The tool bodies behind strict inputs, apart from MCP so tests call them."""

    def __init__(
        self, rhythm: Rhythm, bearer: Callable[[], str | None] = current_bearer
    ) -> None:
        self._caller = Caller(rhythm, bearer)

    async def call(
        self,
        name: str,
        arguments: Mapping[str, object] | None = None,
        progress: Progress | None = None,
    ) -> Payload:
        """Check ``arguments`` against the tool's schema, then run the tool once.

        Raises :class:`ToolCallError`; ``invalid_request`` comes before any
        identity call.
        """
        spec = BY_NAME.get(name)
        if spec is None:
            raise ToolCallError("invalid_request", "name: no such tool")
        parsed = inputs.parse(spec.arguments, {} if arguments is None else arguments)
        return await spec.body(self._caller, parsed, progress)


def mcp_tools(tools: ClinicalTools) -> list[Tool]:
    """One mcp ``Tool`` per spec, advertising the spec's strict input schema."""
    return [_mcp_tool(tools, spec) for spec in SPECS]


def _mcp_tool(tools: ClinicalTools, spec: ToolSpec[Any]) -> Tool:
    async def run(ctx: Context[Any, Any]) -> ToolResult:
        # The raw arguments, as the client sent them: ClinicalTools checks them.
        params = ctx.request_context.params or {}
        arguments = params.get("arguments")

        async def progress(elapsed: float, total: float, message: str) -> None:
            await ctx.report_progress(elapsed, total, message)

        return await respond(lambda: tools.call(spec.name, arguments, progress))

    tool = Tool.from_function(
        run, name=spec.name, description=spec.description, annotations=spec.annotations
    )
    return tool.model_copy(update={"parameters": inputs.input_schema(spec.arguments)})
