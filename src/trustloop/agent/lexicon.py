"""Common names of tests and measurements, and the LOINC codes the planner asks for.

The codes are the ones Synthea's R4 output uses (the bundled samples), e.g. HbA1c
is ``4548-4`` and blood pressure the panel ``55284-4`` with systolic and diastolic
components. "labs" asks for the ``laboratory`` category, "vitals" for
``vital-signs``. A name not listed here is not understood: ask by LOINC code
("results for LOINC 2345-7").
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class LabQuery:
    """One ``get_lab_results`` filter: a LOINC code or a category, and its label."""

    label: str
    code: str | None = None
    category: str | None = None


# (words as the clinician types them, label, LOINC code, category)
_TESTS: tuple[tuple[tuple[str, ...], str, str, str], ...] = (
    (("hba1c", "hb a1c", "a1c", "hemoglobin a1c", "haemoglobin a1c",
      "glycated hemoglobin", "glycated haemoglobin"), "HbA1c", "4548-4", "laboratory"),
    (("blood pressure", "bp"), "blood pressure", "55284-4", "vital-signs"),
    (("glucose", "blood sugar"), "glucose", "2339-0", "laboratory"),
    (("ldl",), "LDL cholesterol", "18262-6", "laboratory"),
    (("hdl",), "HDL cholesterol", "2085-9", "laboratory"),
    (("total cholesterol", "cholesterol"), "total cholesterol", "2093-3",
     "laboratory"),
    (("triglycerides", "triglyceride"), "triglycerides", "2571-8", "laboratory"),
    (("egfr", "gfr"), "eGFR", "33914-3", "laboratory"),
    (("creatinine",), "creatinine", "38483-4", "laboratory"),
    (("potassium",), "potassium", "6298-4", "laboratory"),
    (("sodium",), "sodium", "2947-0", "laboratory"),
    (("hemoglobin", "haemoglobin", "hgb"), "hemoglobin", "718-7", "laboratory"),
    (("platelets", "platelet count"), "platelets", "777-3", "laboratory"),
    (("white cell count", "wbc", "leukocytes"), "leukocytes", "6690-2",
     "laboratory"),
    (("bmi", "body mass index"), "BMI", "39156-5", "vital-signs"),
    (("weight", "body weight"), "body weight", "29463-7", "vital-signs"),
    (("height", "body height"), "body height", "8302-2", "vital-signs"),
    (("temperature",), "temperature", "8331-1", "vital-signs"),
    (("heart rate", "pulse"), "heart rate", "8867-4", "vital-signs"),
)  # fmt: skip

_CATEGORIES: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("lab results", "laboratory results", "labs", "lab tests", "lab work",
      "bloodwork", "blood work"), "lab results", "laboratory"),
    (("vital signs", "vitals"), "vital signs", "vital-signs"),
)  # fmt: skip

_LOINC = re.compile(r"\bloinc\s+(?P<code>[0-9]{1,7}-[0-9])\b", re.I)


def find_lab(text: str) -> tuple[LabQuery, int, int] | None:
    """The first test or category named in ``text``, and where it stands in it."""
    loinc = _LOINC.search(text)
    if loinc is not None:
        code = loinc.group("code")
        return LabQuery(f"LOINC {code}", code=code), loinc.start(), loinc.end()

    found: tuple[LabQuery, int, int] | None = None
    for words, label, code, category in _TESTS:
        found = _earliest(found, text, words, LabQuery(label, code, category))
    if found is not None:
        return found
    for words, label, category in _CATEGORIES:
        found = _earliest(found, text, words, LabQuery(label, category=category))
    return found


def _earliest(
    best: tuple[LabQuery, int, int] | None,
    text: str,
    words: tuple[str, ...],
    query: LabQuery,
) -> tuple[LabQuery, int, int] | None:
    pattern = r"\b(?:" + "|".join(re.escape(w) for w in words) + r")\b"
    hit = re.search(pattern, text, re.I)
    if hit is None or (best is not None and best[1] <= hit.start()):
        return best
    return query, hit.start(), hit.end()
