"""Clients of the trust systems: the IdP (OAuth), Vault and the SPIFFE Workload API."""
