"""Local SPIFFE Workload API and trust bundle endpoint, standing in for SPIRE.

Dev-only (DESIGN.md, "name the danger"): keys are made in memory at start, the
socket a workload connects to is its attestation, and the entry point refuses to
run outside the ``local`` profile. Production uses a real SPIRE agent; the
production client, :mod:`trustloop.identity.spiffe`, cannot tell the difference.
"""

from trustloop.devstack.spire.server import (
    SpireServer,
    registered_workloads,
    serve_in_background,
)

__all__ = ["SpireServer", "registered_workloads", "serve_in_background"]
