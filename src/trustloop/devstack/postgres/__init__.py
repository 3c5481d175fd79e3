"""Private PostgreSQL cluster with pgaudit for the local stack (dev-only).

See :mod:`trustloop.devstack.postgres.cluster` for the layout and the contract.
"""

from trustloop.devstack.postgres.cluster import (
    ClusterInfo,
    destroy_cluster,
    ensure_cluster,
    load_info,
    start_cluster,
    stop_cluster,
)
from trustloop.devstack.postgres.config import ADMIN_ROLES, SUPERUSER
from trustloop.devstack.postgres.tooling import ClusterError

__all__ = [
    "ADMIN_ROLES",
    "SUPERUSER",
    "ClusterError",
    "ClusterInfo",
    "destroy_cluster",
    "ensure_cluster",
    "load_info",
    "start_cluster",
    "stop_cluster",
]
