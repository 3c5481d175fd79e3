"""Checking a TOTP code (RFC 6238) as the second factor of a login.

Six digits, 30-second steps, HMAC-SHA1 (RFC 6238 §4, pyotp's defaults, what every
authenticator app speaks). One step of drift either way is accepted (§5.2: "We
RECOMMEND that at most one time step is allowed as the network delay"), so the
code of the previous, current or next step passes; two steps off fails.

§5.2 also says the verifier "MUST NOT accept the second attempt of the same OTP
after the successful validation has been issued for the first OTP": each user's
accepted time steps are remembered (for as long as they could still be inside the
window) and a code for a step already used is refused, whichever login presents it.
"""

from __future__ import annotations

import hmac
import re
import threading
import time

import pyotp

from trustloop.devstack.jwtcheck import Clock

DRIFT_STEPS = 1
_CODE = re.compile(r"^[0-9]{6}$")


class TotpVerifier:
    """Verifies codes against per-user secrets; each time step counts once."""

    def __init__(self, *, clock: Clock = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._used: dict[str, set[int]] = {}  # user -> accepted time steps

    def verify(self, user: str, secret: str | None, code: str) -> bool:
        """True once for a valid, unused code of ``user``; never says why not."""
        if secret is None or not _CODE.fullmatch(code):
            return False
        totp = pyotp.TOTP(secret)
        now = totp.timecode(self._clock())
        steps = range(now - DRIFT_STEPS, now + DRIFT_STEPS + 1)
        # Every candidate is compared, so timing says nothing about which matched.
        matches = [s for s in steps if hmac.compare_digest(totp.generate_otp(s), code)]
        if not matches:
            return False
        with self._lock:
            used = self._used.setdefault(user, set())
            used.difference_update({s for s in used if s < now - DRIFT_STEPS})
            fresh = [s for s in matches if s not in used]
            if not fresh:
                return False
            used.add(fresh[0])
        return True
