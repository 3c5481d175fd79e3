"""The IdP's sign-in pages: HTML only, no script, under a strict CSP.

Every page is plain HTML forms (keyboard-usable: labels, one ``autofocus``,
visible focus), sized for a phone first. The element ids are a contract
(docs/contracts.md, "Sign-in"): the web app's browser tests drive them.

- login: ``#username``, ``#password``, ``#sign-in``
- second factor: ``#otp``, ``#verify``, ``#use-push``
- push waiting: reloads itself every 2 s (``<meta http-equiv="refresh">``, so no
  script), ``#use-code`` goes back to the code
- device: ``#user-code``, ``#continue``; then ``#approve`` and ``#deny``

The CSP allows nothing but the IdP's own stylesheet and forms posted to the IdP
(plus the client's redirect origin: browsers apply ``form-action`` to the
redirect that follows a form post).
"""

from __future__ import annotations

import html
from urllib.parse import urlsplit

from starlette.responses import HTMLResponse, Response

from trustloop.devstack.idp.errors import NO_STORE

CSS_PATH = "/oauth2/login.css"
WRONG = "Wrong username, password or code."

CSS = """
*{box-sizing:border-box}
body{font:16px/1.4 system-ui,sans-serif;margin:0;background:#f3f5f7;color:#1b1f24}
main{max-width:24rem;margin:0 auto;padding:1.5rem 1rem}
h1{font-size:1.4rem;margin:.2rem 0 1rem}
.card{background:#fff;border-radius:12px;padding:1.25rem;
box-shadow:0 1px 3px rgba(0,0,0,.15)}
.card>:first-child{margin-top:0}
label{display:block;font-weight:600;margin:.8rem 0 .3rem}
input{width:100%;font-size:1.1rem;padding:.65rem;border:1px solid #8a939c;
border-radius:8px}
button{width:100%;font-size:1.05rem;padding:.75rem;margin-top:1rem;border:0;
border-radius:8px;background:#0b5cad;color:#fff;cursor:pointer}
button.secondary{background:#e4e9ee;color:#1b1f24}
button.deny{background:#a4262c}
input:focus,button:focus,a:focus{outline:3px solid #f0a500;outline-offset:2px}
.alert{background:#fdecea;color:#7a1a1a;border-radius:8px;padding:.6rem .8rem}
.note{color:#4a535c;font-size:.95rem}
.code{font:600 1.6rem/1 ui-monospace,monospace;letter-spacing:.15em}
hr{border:0;border-top:1px solid #dde2e7;margin:1.25rem 0}
"""

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
{refresh}<title>{title} · trustloop</title>
<link rel="stylesheet" href="{css}">
</head><body><main><h1>{title}</h1><div class="card">{body}</div></main></body></html>
"""


def _alert(message: str | None) -> str:
    if not message:
        return ""
    return f'<p class="alert" role="alert" id="error">{html.escape(message)}</p>'


def _hidden(transaction_id: str, csrf: str) -> str:
    return (
        f'<input type="hidden" name="tx" value="{html.escape(transaction_id)}">'
        f'<input type="hidden" name="csrf" value="{html.escape(csrf)}">'
    )


def login_form(transaction_id: str, csrf: str, *, error: str | None = None) -> str:
    return f"""{_alert(error)}
<form method="post" action="/oauth2/login">{_hidden(transaction_id, csrf)}
<label for="username">Username</label>
<input id="username" name="username" autocomplete="username" autocapitalize="none"
 spellcheck="false" required autofocus>
<label for="password">Password</label>
<input id="password" name="password" type="password"
 autocomplete="current-password" required>
<button id="sign-in" type="submit">Sign in</button>
</form>"""


def second_factor(
    transaction_id: str, csrf: str, name: str, *, error: str | None = None
) -> str:
    return f"""{_alert(error)}
<p>Password accepted for {html.escape(name)}. Now confirm it is you.</p>
<form method="post" action="/oauth2/login/otp">{_hidden(transaction_id, csrf)}
<label for="otp">6-digit code from your authenticator app</label>
<input id="otp" name="otp" inputmode="numeric" pattern="[0-9]{{6}}" maxlength="6"
 autocomplete="one-time-code" required autofocus>
<button id="verify" type="submit">Verify</button>
</form><hr>
<form method="post" action="/oauth2/login/push">{_hidden(transaction_id, csrf)}
<button id="use-push" class="secondary" type="submit">
Send a push to my authenticator instead</button>
</form>"""


def push_waiting(transaction_id: str, message: str) -> str:
    tx = html.escape(transaction_id)
    return f"""<p role="status">Approve the request on your authenticator:
<strong>{html.escape(message)}</strong></p>
<p class="note">This page checks again every 2 seconds.</p>
<p><a id="use-code" href="/oauth2/login/factor?tx={tx}">Use a code instead</a></p>"""


def refresh_tag(transaction_id: str) -> str:
    url = f"/oauth2/login/push?tx={html.escape(transaction_id)}"
    return f'<meta http-equiv="refresh" content="2; url={url}">\n'


def user_code_form(*, error: str | None = None) -> str:
    return f"""{_alert(error)}
<p>Enter the code shown in your terminal.</p>
<form method="get" action="/device">
<label for="user-code">Code</label>
<input id="user-code" name="user_code" autocomplete="off" autocapitalize="characters"
 spellcheck="false" maxlength="9" required autofocus>
<button id="continue" type="submit">Continue</button>
</form>"""


def device_confirm(transaction_id: str, csrf: str, name: str, user_code: str) -> str:
    return f"""<p>Let the <strong>trustloop command line</strong> sign in as
{html.escape(name)}?</p>
<p>Check that your terminal shows this code:</p>
<p class="code">{html.escape(user_code)}</p>
<form method="post" action="/device/confirm">{_hidden(transaction_id, csrf)}
<button id="approve" name="decision" value="approve" type="submit">Approve</button>
<button id="deny" class="deny" name="decision" value="deny" type="submit">Deny
</button></form>"""


def message(text: str) -> str:
    return f'<p role="status">{html.escape(text)}</p>'


def page(
    title: str,
    body: str,
    *,
    status: int = 200,
    redirect_uri: str | None = None,
    refresh: str = "",
) -> HTMLResponse:
    """The page with the security headers every sign-in page carries."""
    document = _PAGE.format(
        title=html.escape(title), body=body, css=CSS_PATH, refresh=refresh
    )
    return HTMLResponse(document, status_code=status, headers=headers(redirect_uri))


def headers(redirect_uri: str | None = None) -> dict[str, str]:
    form_action = "'self'"
    if redirect_uri:
        parts = urlsplit(redirect_uri)
        form_action += f" {parts.scheme}://{parts.netloc}"
    csp = (
        "default-src 'none'; style-src 'self'; img-src 'self'; "
        f"form-action {form_action}; frame-ancestors 'none'; base-uri 'none'"
    )
    return {
        **NO_STORE,
        "Content-Security-Policy": csp,
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }


def stylesheet() -> Response:
    return Response(
        CSS,
        media_type="text/css",
        headers={"Cache-Control": "max-age=300", "X-Content-Type-Options": "nosniff"},
    )
