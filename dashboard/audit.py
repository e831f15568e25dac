"""The audit log: every view of a patient, session or export, every login and every change, with who, what, when
and from where. Rows are only ever added (no code path updates or deletes them).
"""

from __future__ import annotations

import logging
import time

from sqlalchemy import select
from sqlalchemy.orm import Session

from dashboard.logins import Caller
from dashboard.tables import AuditEntry

log = logging.getLogger(__name__)


def record(
    db: Session,
    caller: Caller | None,
    action: str,
    target_type: str = "",
    target_id: str | int = "",
    *,
    outcome: str = "ok",
    detail: str = "",
    username: str = "",
    ip: str = "",
    user_agent: str = "",
) -> AuditEntry:
    """Add one audit row (in the caller's unit of work, so it commits with what it describes)."""
    entry = AuditEntry(
        ts=time.time(),
        user_id=caller.user_id if caller else None,
        username=(caller.username if caller else username)[:64],
        action=action,
        target_type=target_type,
        target_id=str(target_id)[:64],
        ip=(caller.ip if caller else ip)[:64],
        user_agent=(caller.user_agent if caller else user_agent)[:300],
        outcome=outcome,
        detail=detail[:2000],
    )
    db.add(entry)
    log.info("audit: %s %s %s:%s %s", entry.username or "-", action, target_type, entry.target_id, outcome)
    return entry


def recent(db: Session, limit: int = 200, *, target_type: str = "", target_id: str = "") -> list[AuditEntry]:
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if target_type:
        query = query.where(AuditEntry.target_type == target_type)
    if target_id:
        query = query.where(AuditEntry.target_id == target_id)
    return list(db.scalars(query))
