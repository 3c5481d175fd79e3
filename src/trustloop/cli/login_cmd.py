"""``trustloop login --as <clinician> [--auto]``: the device grant (RFC 8628).

Prints the verification URI and the user code, then polls the IdP (§3.5, slower
after ``slow_down``) until the clinician approves on the IdP's ``/device`` page.
``--auto`` (local profile only) answers the device page itself, as the demo
clinician would: password, TOTP code, Approve. The tokens stay in this process:
it prints who signed in and how (``amr``), the session id and the token's
``jti``, never a token.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from trustloop.cli.browser import Browser, BrowserError, new_http
from trustloop.cli.output import console, fail
from trustloop.cli.scripted_login import pass_login
from trustloop.cli.session import demo_credentials, display_claims
from trustloop.devstack.demo import CLINICIANS, by_username
from trustloop.identity.oauth import (
    CLI_CLIENT_ID,
    IdpClient,
    IdpUnavailableError,
    OAuthError,
)
from trustloop.identity.sign_in import DeviceAuthorization, SignInClient, SignInTokens
from trustloop.settings import Settings, require_local


def login(
    as_: Annotated[
        str, typer.Option("--as", help="Demo clinician's user name, e.g. achen.")
    ],
    auto: Annotated[
        bool,
        typer.Option(
            "--auto", help="Answer the device page as the demo clinician (local)."
        ),
    ] = False,
) -> None:
    """Sign in on the command line with the device grant (approve in a browser)."""
    if by_username(as_) is None:
        known = ", ".join(c.username for c in CLINICIANS)
        fail(f"unknown clinician {as_!r}; demo clinicians are: {known}")
    settings = Settings()
    if auto:
        require_local(settings, "trustloop login --auto")
    try:
        tokens = asyncio.run(device_sign_in(settings, as_, auto=auto))
    except OAuthError as exc:
        fail(f"sign-in failed: {exc}")
    except IdpUnavailableError as exc:
        fail(f"{exc} (is the stack running? start it with `trustloop up`)")
    claims = display_claims(tokens.access_token)
    console.print(
        f"signed in as {claims.get('sub')} ({' + '.join(claims.get('amr', []))}), "
        f"session {claims.get('sid')}, token jti {claims.get('jti')}",
        markup=False,
    )


async def device_sign_in(
    settings: Settings, username: str, *, auto: bool
) -> SignInTokens:
    """Start the device grant, show the code, (answer the page,) poll for tokens."""
    async with new_http() as http:
        client = SignInClient(IdpClient(settings.idp_issuer, http), CLI_CLIENT_ID)
        device = await client.start_device()
        console.print(
            f"To sign in, open {device.verification_uri} and enter the code "
            f"[bold]{device.user_code}[/] (expires in {device.expires_in // 60} min)."
        )
        if device.verification_uri_complete:
            console.print(f"Or open {device.verification_uri_complete}", markup=False)
        if auto:
            await answer_device_page(settings, username, device)
        else:
            console.print("Waiting for approval...")
        return await client.wait_for_device(device)


async def answer_device_page(
    settings: Settings, username: str, device: DeviceAuthorization
) -> None:
    """The demo clinician at the device page: code, password, TOTP, Approve."""
    creds = demo_credentials(settings, username)
    async with new_http() as http:
        browser = Browser(http)
        url = device.verification_uri_complete or device.verification_uri
        if (await browser.open(url)).status_code != 200 or not browser.has("username"):
            raise BrowserError("the device page did not accept the code")
        response = await browser.follow(await pass_login(browser, creds))
        if not browser.has("approve"):
            raise BrowserError(f"no approval page (HTTP {response.status_code})")
        if (
            await browser.submit("approve", {"decision": "approve"})
        ).status_code != 200:
            raise BrowserError("the approval was not accepted")
    console.print(f"[magenta]  (browser: {username} approved the sign-in)[/]")
