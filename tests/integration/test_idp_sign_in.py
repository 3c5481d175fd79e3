"""Sign-in against the IdP as its own process: the CLI's code flow and device grant.

``python -m trustloop.devstack.idp`` on a free loopback port; ``sign_in`` (the
scripted browser: login page, password, TOTP) and ``trustloop login --auto``
(the device grant, answered on the /device page) as a clinician would run them.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from trustloop.cli.session import how_signed_in, sign_in, sign_in_tokens
from trustloop.devstack.net import free_port
from trustloop.settings import Settings

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.integration

START_TIMEOUT_S = 30.0
TRUSTLOOP = Path(sys.executable).parent / "trustloop"


@dataclass(frozen=True)
class RunningIdp:
    settings: Settings
    env: dict[str, str]


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningIdp]:
    state = tmp_path_factory.mktemp("signin-idp")
    settings = Settings(
        state_dir=state,
        idp_url=f"http://127.0.0.1:{free_port()}",
        # Sign-in never needs the SPIFFE bundle; nothing listens there.
        spire_bundle_url=f"http://127.0.0.1:{free_port()}",
    )
    env = {
        **os.environ,
        "TRUSTLOOP_PROFILE": "local",
        "TRUSTLOOP_STATE_DIR": str(state),
        "TRUSTLOOP_IDP_URL": settings.idp_url,
        "TRUSTLOOP_SPIRE_BUNDLE_URL": settings.spire_bundle_url,
    }
    log = (state / "idp.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "trustloop.devstack.idp"],
        env=env,
        stdout=log,
        stderr=log,
        cwd=state,
    )
    try:
        _wait_ready(settings, process)
        yield RunningIdp(settings, env)
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def _wait_ready(settings: Settings, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    url = f"{settings.idp_url}/.well-known/openid-configuration"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the IdP exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the IdP did not become ready")


def _userinfo(idp: RunningIdp, token: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.get(f"{idp.settings.idp_url}/oauth2/userinfo", headers=headers)


def test_sign_in_walks_the_login_pages_with_a_totp_code(idp: RunningIdp) -> None:
    tokens = asyncio.run(sign_in_tokens(idp.settings, "achen"))

    info = _userinfo(idp, tokens.access_token)
    assert info.json()["sub"] == "clin-achen"
    assert tokens.id_token is not None
    assert tokens.refresh_token is not None
    assert how_signed_in(tokens.access_token) == "password + TOTP code"
    audit = (idp.settings.audit_dir / "idp.jsonl").read_text()
    assert '"grant":"authorization_code"' in audit.replace(" ", "")
    assert tokens.access_token not in audit


def test_repeated_sign_ins_all_use_a_second_factor(idp: RunningIdp) -> None:
    """Once this window's codes are used, the scripted device approves a push
    (so a sign-in never waits for the next 30 s window)."""
    tokens = [sign_in(idp.settings, "bokafor") for _ in range(5)]

    assert len(set(tokens)) == 5
    assert {how_signed_in(t) for t in tokens} <= {
        "password + TOTP code",
        "password + push approval",
    }
    assert all(_userinfo(idp, t).status_code == 200 for t in tokens)


def test_trustloop_login_auto_signs_in_with_the_device_grant(
    idp: RunningIdp,
) -> None:
    result = subprocess.run(
        [str(TRUSTLOOP), "login", "--as", "cwhite", "--auto"],
        env=idp.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert f"{idp.settings.idp_url}/device" in result.stdout
    assert "signed in as clin-cwhite (pwd + otp)" in result.stdout
    audit = (idp.settings.audit_dir / "idp.jsonl").read_text()
    assert "device_authorized" in audit


def test_trustloop_login_refuses_an_unknown_clinician(idp: RunningIdp) -> None:
    result = subprocess.run(
        [str(TRUSTLOOP), "login", "--as", "mallory"],
        env=idp.env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert result.returncode == 1
    assert "unknown clinician" in result.stderr
