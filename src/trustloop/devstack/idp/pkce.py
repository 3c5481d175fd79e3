"""Proof Key for Code Exchange (RFC 7636), S256 only.

§4.2: ``code_challenge = BASE64URL(SHA256(ASCII(code_verifier)))``; the
verifier is 43 to 128 characters of ``[A-Z] / [a-z] / [0-9] / "-" / "." / "_" /
"~"`` (§4.1), and so, S256 being 32 bytes, the challenge is exactly 43 base64url
characters. ``plain`` is refused: OAuth 2.0 Security BCP (RFC 9700 §2.1.1) says
clients SHOULD use S256, and nothing here needs ``plain``.
"""

from __future__ import annotations

import hmac
import re

from authlib.oauth2.rfc7636 import create_s256_code_challenge

S256 = "S256"
_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
_CHALLENGE = re.compile(r"^[A-Za-z0-9\-_]{43}$")


def valid_challenge(challenge: str) -> bool:
    """Whether ``challenge`` has the shape of an S256 challenge."""
    return bool(_CHALLENGE.fullmatch(challenge))


def verifier_matches(verifier: str, challenge: str) -> bool:
    """§4.6: the server recomputes the challenge from the verifier and compares."""
    if not _VERIFIER.fullmatch(verifier):
        return False
    computed: str = create_s256_code_challenge(verifier)
    return hmac.compare_digest(computed, challenge)
