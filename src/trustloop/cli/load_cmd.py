"""``trustloop load [PATH]``: import FHIR R4 bundles and set up the demo care teams.

The care teams go to PostgreSQL (row-level security) and, when the IdP is running,
to the IdP's directory over its admin socket (the exchange policy's facts).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import psycopg
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from trustloop.cli.output import console, fail
from trustloop.devstack.demo_setup import apply_demo_setup
from trustloop.devstack.idp.admin import admin_socket
from trustloop.devstack.idp.provision import (
    AdminUnreachableError,
    ProvisionError,
    provision_from_database,
)
from trustloop.devstack.postgres import (
    ClusterError,
    ClusterInfo,
    start_cluster,
    stop_cluster,
)
from trustloop.devstack.stack import supervisor_pid
from trustloop.records.fhir_import import RecordsError, import_path
from trustloop.records.samples import samples_path
from trustloop.records.schema import apply_schema
from trustloop.settings import Settings, require_local

if TYPE_CHECKING:
    from trustloop.devstack.stack import Stack


def load(
    path: Annotated[
        Path | None,
        typer.Argument(help="A bundle file or a folder of them (default: samples)."),
    ] = None,
) -> None:
    """Import Synthea FHIR R4 bundles into the local cluster (idempotent)."""
    settings = Settings()
    require_local(settings, "trustloop load")
    source = path or samples_path()
    if not source.exists():
        fail(f"{source}: no such file or folder")
    try:
        cluster, started_here = _cluster(settings)
    except ClusterError as exc:
        fail(str(exc))
    try:
        apply_schema(cluster.admin_conninfo())
        load_into(cluster, source, settings.state_dir)
    except (RecordsError, ProvisionError) as exc:
        fail(str(exc))
    finally:
        # A stack started meanwhile (`trustloop up`) uses this cluster now.
        if started_here and supervisor_pid(settings.state_dir) is None:
            stop_cluster(settings.state_dir)


def _cluster(settings: Settings) -> tuple[ClusterInfo, bool]:
    """The running cluster, or one started just for this load (and stopped after)."""
    info_file = settings.state_dir / "postgres" / "cluster.json"
    was_running = info_file.exists() and _answers(settings)
    return start_cluster(settings.state_dir), not was_running


def _answers(settings: Settings) -> bool:
    from trustloop.devstack.postgres import load_info

    try:
        with psycopg.connect(
            load_info(settings.state_dir).admin_conninfo(), connect_timeout=2
        ):
            return True
    except (psycopg.Error, ClusterError):
        return False


def load_into(cluster: ClusterInfo, source: Path, state_dir: Path) -> None:
    """Import ``source``, assign the demo care teams, provision them to the IdP."""
    with Progress(
        TextColumn("loading {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task(str(source), total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        try:
            counts = import_path(cluster.admin_conninfo(), source, progress=advance)
        finally:
            # Files before a bad one are committed: their patients get care teams too.
            apply_demo_setup(cluster.admin_conninfo())
    summary = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()) if n)
    console.print(f"  ✓ loaded {summary}")
    provision_idp(cluster, state_dir)


def provision_idp(cluster: ClusterInfo, state_dir: Path) -> None:
    """Copy the care teams to a running IdP; else say when that happens."""
    later = "  IdP not running: care teams are provisioned at the next `trustloop up`"
    if not admin_socket(state_dir).exists():
        console.print(later)
        return
    try:
        done = provision_from_database(state_dir, cluster.admin_conninfo())
    except AdminUnreachableError:
        console.print(later)
        return
    console.print(
        f"  ✓ provisioned the IdP: {done.patients} patients, "
        f"{done.care_teams} care teams"
    )


def load_samples_if_empty(stack: Stack) -> None:
    """First start: load the bundled samples when the database has no patients."""
    if stack.cluster is None:
        return
    with psycopg.connect(stack.cluster.admin_conninfo()) as conn:
        row = conn.execute("select count(*) from clinical.patients").fetchone()
    if row is not None and row[0] == 0:
        load_into(stack.cluster, samples_path(), stack.settings.state_dir)
