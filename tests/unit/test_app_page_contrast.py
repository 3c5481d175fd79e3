"""The page's colour pairs meet WCAG 2.2 AA contrast (4.5:1 for text)."""

from __future__ import annotations

import re

import pytest

from trustloop.app.server import STATIC

CSS = (STATIC / "app.css").read_text()
VARIABLES = dict(re.findall(r"--([a-z-]+):\s*(#[0-9a-f]{6});", CSS))


def luminance(hex_colour: str) -> float:
    """WCAG 2.2 relative luminance of an sRGB colour."""
    channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [
        c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels
    ]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_the_contrast_formula_matches_wcag_extremes() -> None:
    assert contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)


@pytest.mark.parametrize(
    ("text", "background"),
    [
        ("ink", "paper"),
        ("ink", "panel"),
        ("muted", "paper"),
        ("muted", "panel"),
        ("accent", "paper"),
        ("accent-ink", "accent"),
        ("ok", "paper"),
        ("bad", "paper"),
        ("ink", "warn-bg"),
    ],
)
def test_text_on_its_background_has_at_least_4_5_to_1(
    text: str, background: str
) -> None:
    assert contrast(VARIABLES[text], VARIABLES[background]) >= 4.5
