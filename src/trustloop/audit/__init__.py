"""Audit: hash-chained JSON lines, one file per system, joined on the OBO jti."""
