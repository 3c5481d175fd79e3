"""The IdP's ES256 signing keys, generated in memory at start, rotatable live.

A :class:`SigningKeys` holds three kinds of key, each with its own ``kid``:

- the *active* key, which signs every new token;
- the *next* key, published in the JWKS before it signs anything, so a validator
  that fetched the JWKS after the previous rotation already knows it (no refetch,
  no rate limit in the way, no downtime at the moment of rotation);
- *retired* keys, which sign nothing but stay published until every token they
  signed has expired (the longest lifetime, 15-minute access tokens, plus the
  validators' leeway), then are dropped.

:meth:`SigningKeys.rotate` is the trigger: next becomes active, active is retired,
a fresh next key is made. The IdP stand-in serves it on its admin socket only
(``POST /admin/v1/signing-keys/rotate``, :mod:`.admin`). Validators pin ES256 per
key (``alg`` in every JWK).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey

from trustloop.devstack.jwtcheck import ALGORITHM, LEEWAY_S, Clock

# The longest lifetime of a token this IdP signs (tokens.ACCESS_TOKEN_TTL_S; a unit
# test pins that they agree). A retired key is published this long, plus leeway.
LONGEST_TOKEN_TTL_S = 15 * 60
RETAIN_S = LONGEST_TOKEN_TTL_S + LEEWAY_S
# Bounds memory if rotation is triggered in a loop; far above any real cadence.
MAX_RETIRED = 16


@dataclass(frozen=True)
class _Retired:
    key: ECKey
    until: float


class SigningKeys:
    """The active ES256 key, the pre-published next key, and retired keys."""

    def __init__(
        self,
        *,
        retain_s: float = RETAIN_S,
        max_retired: int = MAX_RETIRED,
        clock: Clock = time.time,
    ) -> None:
        if retain_s < 0 or max_retired < 1:
            raise ValueError("retain_s must not be negative, max_retired positive")
        self._retain_s = retain_s
        self._max_retired = max_retired
        self._clock = clock
        self._lock = threading.Lock()
        self._active = _new_key()
        self._next = _new_key()
        self._retired: list[_Retired] = []
        # Public halves by kid, made once per key: importing a JWK costs more
        # than the signature check it serves (docs/performance.md).
        self._public: dict[str, ECKey] = {}

    @property
    def active_kid(self) -> str:
        return str(self._active.kid)

    def rotate(self) -> str:
        """Sign with the next key from now on; returns its ``kid``.

        The previous active key stays published until every token it signed has
        expired.
        """
        with self._lock:
            retired = _Retired(self._active, self._clock() + self._retain_s)
            self._retired.insert(0, retired)
            del self._retired[self._max_retired :]
            self._active, self._next = self._next, _new_key()
            return str(self._active.kid)

    def sign(self, claims: dict[str, Any], *, typ: str) -> str:
        """A compact JWS over ``claims`` with header ``alg``, ``kid`` and ``typ``."""
        with self._lock:
            key = self._active
        header = {"alg": ALGORITHM, "kid": key.kid, "typ": typ}
        token: str = jwt.encode(header, claims, key, algorithms=[ALGORITHM])
        return token

    def public_keys(self) -> list[ECKey]:
        """Public halves of the published keys: active, next, then retired."""
        with self._lock:
            now = self._clock()
            self._retired = [r for r in self._retired if r.until > now]
            keys = [self._active, self._next, *(r.key for r in self._retired)]
            public = [self._public_of(key) for key in keys]
            kids = {str(key.kid) for key in keys}
            self._public = {k: v for k, v in self._public.items() if k in kids}
        return public

    def _public_of(self, key: ECKey) -> ECKey:
        kid = str(key.kid)
        public = self._public.get(kid)
        if public is None:
            public = ECKey.import_key(_public_jwk(key))
            self._public[kid] = public
        return public

    def jwks(self) -> dict[str, Any]:
        """The JWKS document served at ``/oauth2/jwks`` (RFC 7517 §5)."""
        return {"keys": [_public_jwk(key) for key in self.public_keys()]}


def _new_key() -> ECKey:
    key: ECKey = ECKey.generate_key("P-256", auto_kid=True)
    return key


def _public_jwk(key: ECKey) -> dict[str, Any]:
    jwk: dict[str, Any] = dict(key.as_dict(private=False))
    jwk.update({"use": "sig", "alg": ALGORITHM, "kid": key.kid})
    return jwk
