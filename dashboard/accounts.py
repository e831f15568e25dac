"""Clinics and user accounts: argon2 password hashes, creation (CLI and admin page), and password checks with a
lockout after repeated failures. There is no default account or password anywhere: the first admin is made with
``feqa dashboard create-admin``, which prompts for a password or generates one and prints it once.
"""

from __future__ import annotations

import secrets
import time

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from common.errors import PermanentError
from dashboard.tables import ROLES, Clinic, User

_HASHER = PasswordHasher()
MIN_PASSWORD = 12


class AccountError(PermanentError):
    """A bad account request (duplicate name, weak password, unknown clinic); the message says what to change."""


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def generate_password() -> str:
    """A random password of about 128 bits, URL-safe."""
    return secrets.token_urlsafe(16)


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"a password needs at least {MIN_PASSWORD} characters")
    if password.strip() != password:
        raise AccountError("a password must not start or end with white space")


def create_clinic(db: Session, name: str) -> Clinic:
    name = name.strip()
    if not name or len(name) > 200:
        raise AccountError("a clinic needs a name of 1-200 characters")
    if db.scalar(select(Clinic).where(func.lower(Clinic.name) == name.lower())) is not None:
        raise AccountError(f"clinic {name!r} exists already")
    clinic = Clinic(name=name, created_ts=time.time())
    db.add(clinic)
    db.flush()
    return clinic


def clinic_by_name(db: Session, name: str) -> Clinic:
    clinic = db.scalar(select(Clinic).where(func.lower(Clinic.name) == name.strip().lower()))
    if clinic is None:
        known = ", ".join(db.scalars(select(Clinic.name).order_by(Clinic.name))) or "none yet"
        raise AccountError(f"no clinic {name!r} (clinics: {known}); create it first with create-clinic")
    return clinic


def create_user(
    db: Session, username: str, password: str, role: str, clinic: Clinic | None, full_name: str = ""
) -> User:
    """A new active account; clinicians must belong to a clinic."""
    username = username.strip().lower()
    if not (3 <= len(username) <= 64) or not all(c.isalnum() or c in "._-" for c in username):
        raise AccountError("a user name is 3-64 letters, digits, '.', '_' or '-'")
    if role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}")
    if role == "clinician" and clinic is None:
        raise AccountError("a clinician belongs to a clinic: give --clinic")
    check_password_strength(password)
    if db.scalar(select(User).where(User.username == username)) is not None:
        raise AccountError(f"user {username!r} exists already")
    user = User(
        username=username,
        full_name=full_name.strip()[:200],
        role=role,
        clinic_id=clinic.id if clinic else None,
        password_hash=hash_password(password),
        active=True,
        failed_logins=0,
        locked_until=0.0,
        created_ts=time.time(),
    )
    db.add(user)
    db.flush()
    return user


def authenticate(db: Session, username: str, password: str, *, attempts: int, lockout_s: float) -> User | None:
    """The active user whose password matches, or None. Failures count; too many lock the name for a while.

    A wrong name costs as much time as a wrong password (a hash is verified either way).
    """
    user = db.scalar(select(User).where(User.username == username.strip().lower()))
    now = time.time()
    if user is None or not user.active:
        _verify(_DUMMY_HASH, password)
        return None
    if user.locked_until > now:
        _verify(_DUMMY_HASH, password)
        return None
    if not _verify(user.password_hash, password):
        user.failed_logins += 1
        if user.failed_logins >= attempts:
            user.locked_until = now + lockout_s
            user.failed_logins = 0
        return None
    user.failed_logins = 0
    if _HASHER.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return user


def set_password(db: Session, user: User, password: str) -> None:
    check_password_strength(password)
    user.password_hash = hash_password(password)
    user.failed_logins = 0
    user.locked_until = 0.0


def _verify(hashed: str, password: str) -> bool:
    try:
        return _HASHER.verify(hashed, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))
