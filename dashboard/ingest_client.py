"""The dashboard's calls to the ingest API with its service credential (``X-Api-Key``): create a session (which
returns the patient's single-use join link) and stop one.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

from common.errors import PermanentError, RetryableError
from common.messages import Consent

log = logging.getLogger(__name__)


class IngestUnavailable(RetryableError):
    """The ingest did not answer; the message says where it was looked for."""


class IngestRefused(PermanentError):
    """The ingest answered with an error (bad key, bad request)."""

    def __init__(self, message: str, status: int, upstream: int = 0) -> None:
        super().__init__(message)
        self.status = status
        self.upstream = upstream


class IngestClient:
    def __init__(self, base_url: str, key: str | None, timeout_s: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._key = key
        self._timeout = timeout_s

    def _headers(self) -> dict[str, str]:
        return {"X-Api-Key": self._key} if self._key else {}

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.base_url}{path}"
        try:
            async with httpx.AsyncClient(timeout=self._timeout) as http:
                res = await http.post(url, json=body, headers=self._headers())
        except httpx.HTTPError as exc:
            raise IngestUnavailable(
                f"the ingest at {self.base_url} did not answer ({exc.__class__.__name__}); "
                "check that it runs and FEQA_DASHBOARD_INGEST_URL"
            ) from None
        if res.status_code == 401:
            raise IngestRefused(
                "the ingest refused the dashboard's service key; set FEQA_DASHBOARD_INGEST_API_KEY (or _FILE) to "
                "the ingest's FEQA_INGEST_API_KEY",
                502,
            )
        if res.status_code >= 400:
            try:
                detail = res.json().get("detail", res.text)
            except ValueError:
                detail = res.text
            raise IngestRefused(f"the ingest refused the request ({res.status_code}): {detail}", 502, res.status_code)
        data = res.json()
        if not isinstance(data, dict):
            raise IngestRefused("the ingest answered with something that is not a JSON object", 502)
        return data

    async def create_session(self, patient_ref: str, protocol: str, consent: Consent) -> dict[str, Any]:
        """``{sid, token, join_url, expires_at}`` of a new session for the pseudonymous ``patient_ref``."""
        data = await self._post(
            "/api/sessions", {"patient_id": patient_ref, "protocol": protocol, "consent": consent.as_dict()}
        )
        for field in ("sid", "join_url", "expires_at"):
            if field not in data:
                raise IngestRefused(f"the ingest's answer lacks {field!r}", 502)
        return data

    async def stop_session(self, sid: str) -> dict[str, Any]:
        """Ask the ingest to end a session (hang up its peer, or end it if the patient never joined)."""
        return await self._post(f"/api/sessions/{sid}/stop", {"reason": "clinician"})
