"""A scripted browser for the IdP's sign-in pages (local profile: demo, tests, CLI).

It does what a person does in a browser, over plain HTTP: keeps cookies, reads
the forms of each page (action, method, hidden fields) and submits them with
the fields a person would type. It follows no redirect by itself, so the caller
sees where the IdP sends it (the redirect URI with the code, the next page).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urljoin

import httpx

from trustloop.identity.oauth import IdpUnavailableError

TIMEOUT_S = 10.0
MAX_HOPS = 10


class BrowserError(IdpUnavailableError):
    """The IdP's page was not what a sign-in page should be."""


@dataclass
class Form:
    """One ``<form>``: where it goes, its fields, and the ids inside it."""

    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)
    ids: set[str] = field(default_factory=set)


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []
        self._open: Form | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        if tag == "form":
            method = attributes.get("method", "get").lower()
            self._open = Form(attributes.get("action", ""), method)
            self.forms.append(self._open)
            return
        if self._open is None:
            return
        if "id" in attributes:
            self._open.ids.add(attributes["id"])
        if tag == "input" and attributes.get("type") == "hidden":
            self._open.fields[attributes.get("name", "")] = attributes.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._open = None


def forms(page: str) -> list[Form]:
    parser = _FormParser()
    parser.feed(page)
    return parser.forms


class Browser:
    """A cookie-keeping HTTP client that fills in forms by element id."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http
        self.url = ""
        self.page = ""

    async def open(self, url: str) -> httpx.Response:
        response = await self._http.get(url)
        self._remember(url, response)
        return response

    async def follow(
        self, response: httpx.Response, *, stop_at: str | None = None
    ) -> httpx.Response:
        """Follow redirects; stop at (and return) one to ``stop_at``."""
        for _ in range(MAX_HOPS):
            location = response.headers.get("location")
            if response.status_code not in (302, 303) or location is None:
                return response
            target = urljoin(self.url, location)
            if stop_at is not None and target.startswith(stop_at):
                return response
            response = await self.open(target)
        raise BrowserError("too many redirects")

    async def submit(self, form_id: str, typed: dict[str, str]) -> httpx.Response:
        """Submit the form holding element ``form_id`` with ``typed`` filled in."""
        form = next((f for f in forms(self.page) if form_id in f.ids), None)
        if form is None:
            raise BrowserError(f"the page has no form with #{form_id}")
        url = urljoin(self.url, form.action)
        data = {**form.fields, **typed}
        if form.method == "post":
            response = await self._http.post(url, data=data)
        else:
            response = await self._http.get(url, params=data)
        self._remember(url, response)
        return response

    def has(self, element_id: str) -> bool:
        return any(element_id in f.ids for f in forms(self.page))

    def _remember(self, url: str, response: httpx.Response) -> None:
        self.url = url
        if response.headers.get("content-type", "").startswith("text/html"):
            self.page = response.text


def new_http() -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=TIMEOUT_S, follow_redirects=False, trust_env=False)
