"""A lease's password and the SCRAM-SHA-256 verifier PostgreSQL stores for it.

The password is :data:`PASSWORD_LENGTH` characters drawn uniformly from the 95
printable ASCII characters (quotes, backslashes and spaces included): about 210
bits. The verifier is PostgreSQL's ``rolpassword`` format (RFC 5802 §3, RFC
7677)::

    SCRAM-SHA-256$<iterations>:<b64 salt>$<b64 StoredKey>:<b64 ServerKey>

computed here, not by libpq, because libpq's ``PQencryptPasswordConn`` takes no
iteration count (PostgreSQL 15 has no ``scram_iterations``) and always stretches
with 4096 PBKDF2 rounds. That stretching protects a password a person chose from
a dictionary attack on a stolen verifier; it adds nothing to a random 210-bit
secret that lives as long as its OBO token (60 s, at most 300 s), and it cost
about 2.4 ms of CPU at Vault per mint and again in libpq at every login (the
client stretches with the count the server announces). So :data:`ITERATIONS` is 1: the verifier still never
contains the password, and inverting it means searching 95^32 candidates.

SASLprep (RFC 4013), which PostgreSQL applies to a password before hashing, is
the identity on printable ASCII; any other character is refused here rather
than hashed in a way a client might not reproduce.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import string

PASSWORD_ALPHABET = string.ascii_letters + string.digits + string.punctuation + " "
PASSWORD_LENGTH = 32
ITERATIONS = 1  # see the module docstring: nothing to stretch in a random secret
SALT_BYTES = 16
_PRINTABLE_ASCII = frozenset(PASSWORD_ALPHABET)


def random_password() -> str:
    """:data:`PASSWORD_LENGTH` characters from :data:`PASSWORD_ALPHABET`."""
    return "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(PASSWORD_LENGTH))


def scram_verifier(
    password: str, *, salt: bytes | None = None, iterations: int = ITERATIONS
) -> str:
    """PostgreSQL's SCRAM-SHA-256 secret for ``password`` (printable ASCII only).

    ``salt`` defaults to :data:`SALT_BYTES` random bytes; ``iterations`` must be
    at least 1 (libpq refuses a server announcing fewer).
    """
    if not password or not set(password) <= _PRINTABLE_ASCII:
        raise ValueError("a lease password must be non-empty printable ASCII")
    if iterations < 1:
        raise ValueError("SCRAM needs at least one iteration")
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    salted = hashlib.pbkdf2_hmac("sha256", password.encode("ascii"), salt, iterations)
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    server_key = hmac.digest(salted, b"Server Key", "sha256")
    stored_key = hashlib.sha256(client_key).digest()
    return (
        f"SCRAM-SHA-256${iterations}:{_b64(salt)}${_b64(stored_key)}:{_b64(server_key)}"
    )


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")
