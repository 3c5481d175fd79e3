"""A frozen clock for the code that takes one (STYLE: time is injectable)."""

from __future__ import annotations


class FakeClock:
    """Returns ``now`` until a test moves it."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
