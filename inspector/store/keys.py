"""API keys for line integrations: shown once, stored as sha256, optionally scoped to lines."""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from inspector.store.base import utcnow
from inspector.store.operations import ApiKey
from inspector.store.repo import InvalidRecordError, audit

log = logging.getLogger(__name__)


def _digest(key: str) -> str:
    # keys are 256-bit random tokens, so a plain hash is enough (no password stretching needed)
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(session: Session, name: str, lines: list[str] | None = None, actor: str = "cli") -> str:
    """-> the new key (the only time it is visible)."""
    if not name or len(name) > 100:
        raise InvalidRecordError("key name must be 1-100 characters")
    if session.scalar(select(ApiKey.id).where(ApiKey.name == name)) is not None:
        raise InvalidRecordError(f"a key named '{name}' exists; revoke it or pick another name")
    key = "insp_" + secrets.token_urlsafe(32)
    session.add(ApiKey(name=name, key_sha256=_digest(key), prefix=key[:12], lines=sorted(set(lines or []))))
    audit(session, actor, "api_key_add", name, {"lines": lines or []})
    session.flush()
    return key


def revoke_api_key(session: Session, name: str, actor: str = "cli") -> None:
    row = session.scalar(select(ApiKey).where(ApiKey.name == name, ApiKey.revoked_at.is_(None)))
    if row is None:
        raise InvalidRecordError(f"no active key named '{name}'")
    row.revoked_at = utcnow()
    audit(session, actor, "api_key_revoke", name)


def list_api_keys(session: Session) -> list[dict]:
    return [
        {"name": k.name, "prefix": k.prefix, "lines": k.lines, "created_at": k.created_at, "revoked_at": k.revoked_at}
        for k in session.scalars(select(ApiKey).order_by(ApiKey.id))
    ]


class KeyChecker:
    """Answers "may this key report for this line?" from a copy of the active keys refreshed every
    ``ttl_s``. With no active key at all, the API is open (a fresh station on a closed network)."""

    def __init__(self, sessions: sessionmaker[Session], ttl_s: float = 5.0) -> None:
        self.sessions, self.ttl_s = sessions, ttl_s
        self._keys: dict[str, list[str]] = {}
        self._loaded = -1e9
        self._lock = threading.Lock()

    def _active(self) -> dict[str, list[str]]:
        with self._lock:
            if time.monotonic() - self._loaded > self.ttl_s:
                try:
                    with self.sessions() as s:
                        rows = s.execute(select(ApiKey.key_sha256, ApiKey.lines).where(ApiKey.revoked_at.is_(None)))
                        self._keys = {sha: lines for sha, lines in rows}
                except SQLAlchemyError as exc:
                    if self._loaded < 0:
                        raise  # never read: refusing is safer than opening the API
                    # the database is down: the line keeps running on the keys last read
                    log.warning("could not refresh API keys (%s); using the last ones read", type(exc).__name__)
                self._loaded = time.monotonic()
            return self._keys

    def check(self, key: str | None, line: str) -> tuple[int, str] | None:
        """-> None when allowed, else (HTTP status, message)."""
        keys = self._active()
        if not keys:
            return None
        if not key:
            return 401, "missing X-API-Key header"
        lines = keys.get(_digest(key))
        if lines is None:
            return 401, "unknown or revoked API key"
        if lines and line not in lines:
            return 403, f"this key may not report for line '{line}' (allowed: {', '.join(lines)})"
        return None
