"""The bundled default population: Synthea FHIR R4 bundles (see README.md here).

Each ``*.json.gz`` holds one file of ``/work/shared/data/synthea-r4`` byte for byte.
"""

from __future__ import annotations

from pathlib import Path


def samples_path() -> Path:
    """The directory of bundled ``*.json.gz`` bundles (a ``trustloop load`` PATH)."""
    return Path(__file__).resolve().parent
