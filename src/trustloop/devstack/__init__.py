"""Local stand-ins for IBM Verify, HashiCorp Vault and SPIRE, plus a private
PostgreSQL cluster. Development and tests only: every entry point refuses to run
outside the ``local`` profile (see :func:`trustloop.settings.require_local`).
"""
