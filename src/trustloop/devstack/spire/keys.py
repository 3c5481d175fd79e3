"""The trust domain's JWT authority: one in-memory ES256 key that signs JWT-SVIDs.

Follows the SPIFFE JWT-SVID standard (§2 header: ``alg``, ``kid``, ``typ``; §3
claims: ``sub``, ``aud``, ``exp``) and serves its public half as a SPIFFE bundle
JWKS (Trust Domain and Bundle standard §4: ``"use": "jwt-svid"``, ``kid``
required). The private key lives only in this process; it is never written out.

Given a ``keys_file``, the authority remembers the *public* half of its key there
(0600). A later authority on the same file (the stand-in restarted) keeps
publishing that key, marked retired, until every SVID it signed has expired, as
SPIRE keeps a previous key in the bundle: a workload's cached SVID still verifies
after a restart instead of being refused until it expires
(tests/faults/test_fault_spiffe_down.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from joserfc import jws, jwt
from joserfc.jwk import ECKey

from trustloop.devstack.jwtcheck import JwksCache, verify_jwt_svid

ALGORITHM = "ES256"
JWT_SVID_TTL_S = 300
RETIRED_KEEP_S = JWT_SVID_TTL_S + 5  # the validators' clock leeway
Clock = Callable[[], float]


class JwtAuthority:
    """Mints and checks JWT-SVIDs for one trust domain."""

    def __init__(
        self,
        trust_domain: str,
        *,
        clock: Clock = time.time,
        keys_file: Path | None = None,
    ) -> None:
        if not trust_domain:
            raise ValueError("a JWT authority needs a trust domain")
        self.trust_domain = trust_domain
        self._clock = clock
        self._key = ECKey.generate_key("P-256", auto_kid=False)
        # RFC 7638 thumbprint: stable for the key, reveals nothing else.
        self.kid: str = self._key.thumbprint()
        self._public = ECKey.import_key(self._key.as_dict(private=False, kid=self.kid))
        self._retired: list[tuple[dict[str, Any], float]] = []
        if keys_file is not None:
            self._retired = _retire_previous(keys_file, clock())
            _remember(keys_file, self._retired, self._jwk())
        retired = [
            ECKey.import_key({k: v for k, v in jwk.items() if k != "use"})
            for jwk, _ in self._retired
        ]
        self._verify_keys = JwksCache(keys=[self._public, *retired])

    @property
    def jwks(self) -> bytes:
        """The bundle: the signing key and any retired key still within its time."""
        now = self._clock()
        keys = [self._jwk()] + [jwk for jwk, drop in self._retired if drop > now]
        return json.dumps({"keys": keys}, sort_keys=True).encode()

    def _jwk(self) -> dict[str, Any]:
        return dict(self._key.as_dict(private=False, kid=self.kid, use="jwt-svid"))

    def mint(self, spiffe_id: str, audience: Sequence[str]) -> str:
        """A signed JWT-SVID for ``spiffe_id``, valid for five minutes, unique ``jti``."""
        if not audience:
            raise ValueError("a JWT-SVID needs an audience")

        now = int(self._clock())
        header = {"alg": ALGORITHM, "kid": self.kid, "typ": "JWT"}
        claims = {
            "sub": spiffe_id,
            "aud": list(audience),
            "iat": now,
            "exp": now + JWT_SVID_TTL_S,
            # Unique per SVID, so a relying party may refuse a replay (RFC 7519
            # §4.1.7); the IdP does for actor tokens.
            "jti": str(uuid.uuid4()),
        }
        return jwt.encode(header, claims, self._key, algorithms=[ALGORITHM])

    def validate(self, token: str, audience: str) -> tuple[str, dict[str, Any]]:
        """SPIFFE ID and claims of a valid JWT-SVID, else ``JwtInvalidError``."""
        spiffe_id = verify_jwt_svid(
            token,
            self._verify_keys,
            audience=audience,
            trust_domain=self.trust_domain,
            clock=self._clock,
        )
        # The signature was verified above, so the payload can be read as is.
        claims: dict[str, Any] = json.loads(jws.extract_compact(token.encode()).payload)
        return spiffe_id, claims


def _retire_previous(path: Path, now: float) -> list[tuple[dict[str, Any], float]]:
    """Keys a previous authority left in ``path``: the active one retires now."""
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))["keys"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    retired = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("jwk"), dict):
            continue
        drop = entry.get("drop_after")
        drop_after = now + RETIRED_KEEP_S if drop is None else float(drop)
        if drop_after > now:
            retired.append((entry["jwk"], drop_after))
    return retired


def _remember(
    path: Path, retired: list[tuple[dict[str, Any], float]], active: dict[str, Any]
) -> None:
    entries = [{"jwk": jwk, "drop_after": drop} for jwk, drop in retired]
    entries.append({"jwk": active, "drop_after": None})
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump({"keys": entries}, out)
    with contextlib.suppress(OSError):
        os.replace(tmp, path)
