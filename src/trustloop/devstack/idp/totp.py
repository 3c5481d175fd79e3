"""Checking a TOTP code (RFC 6238) as the second factor of a login.

Six digits, 30-second steps, HMAC-SHA1 (RFC 6238 §4, pyotp's defaults, what every
authenticator app speaks). One step of drift either way is accepted (§5.2: "We
RECOMMEND that at most one time step is allowed as the network delay"), so the
code of the previous, current or next step passes; two steps off fails.

§5.2 also says the verifier "MUST NOT accept the second attempt of the same OTP
after the successful validation has been issued for the first OTP": each user's
accepted time steps are remembered (for as long as they could still be inside the
window) and a code for a step already used is refused, whichever login presents it.

§5.1 asks the verifier to limit attempts. A login ends after five wrong codes,
but a caller who knows the password can start login after login: wrong codes
are also counted per user, and after :data:`MAX_WRONG_CODES` within
:data:`WRONG_CODE_WINDOW_S` every code of that user (a right one too) is refused
until the window passes. The push factor stays open to the clinician meanwhile.
"""

from __future__ import annotations

import hmac
import re
import threading
import time

import pyotp

from trustloop.devstack.jwtcheck import Clock

DRIFT_STEPS = 1
MAX_WRONG_CODES = 10
WRONG_CODE_WINDOW_S = 600
_CODE = re.compile(r"^[0-9]{6}$")


class TotpVerifier:
    """Verifies codes against per-user secrets; each time step counts once."""

    def __init__(self, *, clock: Clock = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._used: dict[str, set[int]] = {}  # user -> accepted time steps
        self._wrong: dict[str, list[float]] = {}  # user -> times of wrong codes

    def verify(self, user: str, secret: str | None, code: str) -> bool:
        """True once for a valid, unused code of ``user``; never says why not."""
        if self._locked(user):
            return False
        if secret is None or not _CODE.fullmatch(code):
            self._count_wrong(user)
            return False
        totp = pyotp.TOTP(secret)
        now = totp.timecode(self._clock())
        steps = range(now - DRIFT_STEPS, now + DRIFT_STEPS + 1)
        # Every candidate is compared, so timing says nothing about which matched.
        matches = [s for s in steps if hmac.compare_digest(totp.generate_otp(s), code)]
        if not matches:
            self._count_wrong(user)
            return False
        with self._lock:
            used = self._used.setdefault(user, set())
            used.difference_update({s for s in used if s < now - DRIFT_STEPS})
            fresh = [s for s in matches if s not in used]
            if not fresh:
                return False
            used.add(fresh[0])
        return True

    def _locked(self, user: str) -> bool:
        with self._lock:
            return len(self._recent(user)) >= MAX_WRONG_CODES

    def _count_wrong(self, user: str) -> None:
        with self._lock:
            self._wrong[user] = [*self._recent(user), self._clock()]

    def _recent(self, user: str) -> list[float]:
        since = self._clock() - WRONG_CODE_WINDOW_S
        return [t for t in self._wrong.get(user, []) if t > since]
