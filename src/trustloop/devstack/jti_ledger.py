"""Single-use ``jti``s: the replay check the IdP and Vault stand-ins share.

A ``jti`` is remembered until its token's ``exp`` plus the validator's leeway
(a token is accepted that long past ``exp``, so its ``jti`` must be refused as
long). Forgetting goes oldest first from a heap: each use costs O(log n) for the
``n`` tokens still live, not a scan of all of them, so the check costs the same
at 5 or 500 calls a second.
"""

from __future__ import annotations

import heapq
import threading

from trustloop.devstack.jwtcheck import Clock


class JtiLedger:
    """Each ``jti`` once, until ``exp + grace_s``; thread-safe."""

    def __init__(self, clock: Clock, *, grace_s: float) -> None:
        self._clock = clock
        self._grace_s = grace_s
        self._seen: set[str] = set()
        self._expiries: list[tuple[float, str]] = []  # heap: (exp, jti)
        self._lock = threading.Lock()

    def first_use(self, jti: str, exp: float) -> bool:
        """Record ``jti``; False if it was seen before (a replay)."""
        now = self._clock()
        with self._lock:
            while self._expiries and self._expiries[0][0] + self._grace_s < now:
                _, old = heapq.heappop(self._expiries)
                self._seen.discard(old)
            if jti in self._seen:
                return False
            self._seen.add(jti)
            heapq.heappush(self._expiries, (exp, jti))
            return True

    def __len__(self) -> int:
        with self._lock:
            return len(self._seen)
