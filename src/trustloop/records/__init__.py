"""Clinical data: the PostgreSQL schema, the FHIR importer and the tool queries."""

from __future__ import annotations

from trustloop.records.samples import samples_path

__all__ = ["samples_path"]
