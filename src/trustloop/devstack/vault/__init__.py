"""Local stand-in for HashiCorp Vault with the ``verify-rar`` secrets engine (dev-only).

Serves the subset in docs/contracts.md: JWT auth for JWT-SVIDs, the ``verify-rar``
engine (an OBO token in, an ephemeral PostgreSQL login out), lease revoke and
lookup, health, and a file audit device. Run it with
``python -m trustloop.devstack.vault``; it refuses any profile but ``local``.

Modules: :mod:`.jwt_auth` (login), :mod:`.verify_rar` (the engine),
:mod:`.lease_engine` (roles in PostgreSQL), :mod:`.reaper`, :mod:`.leases`,
:mod:`.sys_routes`, :mod:`.audit` (the audit device), :mod:`.endpoint` (audited
request handling), :mod:`.tokens`, :mod:`.errors`, :mod:`.app`.
"""
