"""The lease password's SCRAM-SHA-256 verifier, against RFC 7677's worked example."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

import pytest

from trustloop.devstack.vault.scram_verifier import (
    ITERATIONS,
    PASSWORD_ALPHABET,
    random_password,
    scram_verifier,
)

VERIFIER = re.compile(
    r"SCRAM-SHA-256\$(?P<iterations>\d+):(?P<salt>[A-Za-z0-9+/=]+)"
    r"\$(?P<stored>[A-Za-z0-9+/=]+):(?P<server>[A-Za-z0-9+/=]+)"
)

# RFC 7677 §3: user "user", password "pencil".
RFC_SALT = "W22ZaJ0SNY7soEsUEjb6gQ=="
RFC_NONCE = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
RFC_AUTH_MESSAGE = (
    "n=user,r=rOprNGfwEbeRWgbNEkqO,"
    f"r={RFC_NONCE},s={RFC_SALT},i=4096,"
    f"c=biws,r={RFC_NONCE}"
).encode()
RFC_CLIENT_PROOF = "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
RFC_SERVER_SIGNATURE = "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def _parts(verifier: str) -> re.Match[str]:
    match = VERIFIER.fullmatch(verifier)
    assert match is not None, "not PostgreSQL's SCRAM-SHA-256 secret format"
    return match


def test_verifier_accepts_rfc_7677s_client_proof_and_signs_like_its_server() -> None:
    """A server holding this verifier would accept the RFC's client and send
    the RFC's server signature: StoredKey and ServerKey are exactly right."""
    parts = _parts(
        scram_verifier("pencil", salt=base64.b64decode(RFC_SALT), iterations=4096)
    )
    stored_key = base64.b64decode(parts["stored"])
    server_key = base64.b64decode(parts["server"])

    client_signature = hmac.digest(stored_key, RFC_AUTH_MESSAGE, "sha256")
    proof = base64.b64decode(RFC_CLIENT_PROOF)
    client_key = bytes(a ^ b for a, b in zip(proof, client_signature, strict=True))
    assert hashlib.sha256(client_key).digest() == stored_key
    signature = hmac.digest(server_key, RFC_AUTH_MESSAGE, "sha256")
    assert base64.b64encode(signature).decode() == RFC_SERVER_SIGNATURE
    assert parts["iterations"] == "4096"
    assert parts["salt"] == RFC_SALT


def test_a_wrong_password_gives_a_verifier_the_rfc_proof_does_not_match() -> None:
    parts = _parts(
        scram_verifier("pencil!", salt=base64.b64decode(RFC_SALT), iterations=4096)
    )
    signature = hmac.digest(
        base64.b64decode(parts["server"]), RFC_AUTH_MESSAGE, "sha256"
    )
    assert base64.b64encode(signature).decode() != RFC_SERVER_SIGNATURE


def test_default_is_one_iteration_and_a_fresh_16_byte_salt() -> None:
    made = [_parts(scram_verifier("same password")) for _ in range(50)]

    assert {m["iterations"] for m in made} == {str(ITERATIONS)} == {"1"}
    assert len({m["salt"] for m in made}) == 50
    assert all(len(base64.b64decode(m["salt"])) == 16 for m in made)
    assert len({m["stored"] for m in made}) == 50  # the salt changes every key


def test_the_verifier_never_contains_the_password() -> None:
    password = random_password()
    assert password not in scram_verifier(password)


@pytest.mark.parametrize(
    "password", ["", "café-latte", "tab\there", "line\nbreak", "nul\x00", "💊"]
)
def test_a_password_saslprep_could_change_is_refused(password: str) -> None:
    with pytest.raises(ValueError, match="printable ASCII"):
        scram_verifier(password)


def test_zero_iterations_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one iteration"):
        scram_verifier("pencil", iterations=0)


def test_random_passwords_are_32_characters_of_the_alphabet_and_distinct() -> None:
    made = {random_password() for _ in range(500)}
    joined = "".join(made)

    assert len(made) == 500
    assert all(len(p) == 32 for p in made)
    assert set(joined) <= set(PASSWORD_ALPHABET)
    # 16,000 draws from 95 characters: a biased draw would leave some unused.
    assert set(joined) == set(PASSWORD_ALPHABET)
