"""The demo's side of the dashboard: its clinic and clinician account (a password generated for this run), and a
clinician's HTTP client that adds the phantom patients and starts their sessions exactly as the dashboard's pages do
(login form with its CSRF token, then the JSON API with the login's CSRF header).

The session cookie is marked Secure; browsers send it to a loopback ``http://`` origin, Python's cookie jar does not,
so this client keeps the cookies itself.
"""

from __future__ import annotations

import re
from http.cookies import SimpleCookie
from typing import Any

import httpx
from sqlalchemy import select

from dashboard.accounts import clinic_by_name, create_clinic, create_user, generate_password, set_password
from dashboard.db import Database
from dashboard.tables import Clinic, User

CLINIC = "Demo clinic"


class DashboardError(RuntimeError):
    """The dashboard refused a demo step (the message says which and why)."""


def demo_account(database_url: str, username: str) -> str:
    """Migrate the database, make sure the demo clinic and clinician exist, give the clinician a new generated
    password and return it (it is shown once; only its hash is stored)."""
    db = Database(database_url)
    try:
        db.migrate()
        password = generate_password()
        with db.session() as s:
            found = s.execute(select(Clinic).where(Clinic.name == CLINIC)).scalar_one_or_none()
            clinic = found if found is not None else create_clinic(s, CLINIC)
            user = s.execute(select(User).where(User.username == username)).scalar_one_or_none()
            if user is None:
                create_user(s, username, password, "clinician", clinic_by_name(s, clinic.name), "Demo clinician")
            else:
                set_password(s, user, password)
        return password
    finally:
        db.close()


class ClinicianClient:
    """A logged-in clinician over HTTP."""

    def __init__(self, base_url: str, timeout_s: float = 20.0) -> None:
        self.http = httpx.AsyncClient(base_url=base_url, timeout=timeout_s, follow_redirects=False)
        self._cookies: dict[str, str] = {}
        self._csrf = ""

    async def __aenter__(self) -> ClinicianClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()

    async def _send(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = dict(kw.pop("headers", {}))
        if self._cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self._cookies.items())
        if self._csrf:
            headers["X-CSRF-Token"] = self._csrf
        res = await self.http.request(method, path, headers=headers, **kw)
        for raw in res.headers.get_list("set-cookie"):
            jar: SimpleCookie = SimpleCookie()
            jar.load(raw)
            for name, morsel in jar.items():
                if morsel["max-age"] == "0" or not morsel.value or morsel.value == '""':
                    self._cookies.pop(name, None)
                else:
                    self._cookies[name] = morsel.value
        return res

    @property
    def cookie_header(self) -> str:
        """The login's cookies as a ``Cookie`` header (for the live websocket)."""
        return "; ".join(f"{k}={v}" for k, v in self._cookies.items())

    async def login(self, username: str, password: str) -> None:
        page = await self._send("GET", "/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        if token is None:
            raise DashboardError(f"the login page has no CSRF token (HTTP {page.status_code})")
        res = await self._send("POST", "/login", data={"username": username, "password": password,
                                                        "csrf_token": token.group(1)})  # fmt: skip
        if res.status_code != 303 or res.headers.get("location") != "/":
            raise DashboardError(f"login as {username} refused (HTTP {res.status_code}): {res.text[:200]}")
        self._csrf = str((await self.json("GET", "/api/me"))["csrf"])

    async def json(self, method: str, path: str, **kw: Any) -> Any:
        res = await self._send(method, path, **kw)
        if res.status_code >= 400:
            raise DashboardError(f"{method} {path}: HTTP {res.status_code}: {res.text[:300]}")
        return res.json()

    async def patient(self, name: str, mrn: str, diagnosis: str) -> int:
        """The id of the clinic's patient with this record number (added when missing)."""
        for p in await self.json("GET", "/api/patients", params={"q": mrn}):
            if p.get("mrn") == mrn:
                return int(p["id"])
        body = {"display_name": name, "mrn": mrn, "diagnosis": diagnosis}
        return int((await self.json("POST", "/api/patients", json=body))["id"])

    async def start_session(self, patient_id: int, protocol: str, note: str = "") -> dict[str, Any]:
        """Start a session (the dashboard asks the ingest for the patient link); returns its record and link."""
        body = {"protocol": protocol, "consent": {"live_scoring": True}, "note": note}
        created: dict[str, Any] = await self.json("POST", f"/api/patients/{patient_id}/sessions", json=body)
        return created
