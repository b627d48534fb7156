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
from inspector.store.rows import ApiKeyRow

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


def list_api_keys(session: Session) -> list[ApiKeyRow]:
    return [ApiKeyRow.of(k) for k in session.scalars(select(ApiKey).order_by(ApiKey.id))]


class KeyChecker:
    """Answers "may this key report for this line?" from the active keys, read on every check so a
    revoked key is refused at its next request, in every process sharing the database. Until the
    first key is made the API is open (a fresh station on a closed network); revoking every key
    closes it rather than opening it again.

    When the database cannot be read, the keys last read stay in force and the database is tried
    again after ``retry_s``: the line keeps running through an outage, and one outage does not
    cost every request a connection timeout."""

    def __init__(self, sessions: sessionmaker[Session], retry_s: float = 5.0) -> None:
        self.sessions, self.retry_s = sessions, retry_s
        self._keys: dict[str, list[str]] | None = None  # active digest -> lines; None: no key ever made
        self._read = False
        self._retry_at = 0.0
        self._lock = threading.Lock()

    def _active(self) -> dict[str, list[str]] | None:
        if self._read and time.monotonic() < self._retry_at:
            return self._keys  # the database failed a moment ago
        try:
            with self.sessions() as s:
                rows = s.execute(select(ApiKey.key_sha256, ApiKey.lines, ApiKey.revoked_at)).all()
                keys = {sha: lines for sha, lines, revoked in rows if revoked is None} if rows else None
        except SQLAlchemyError as exc:
            with self._lock:
                if not self._read:
                    raise  # never read: refusing is safer than opening the API
                self._retry_at = time.monotonic() + self.retry_s
            log.warning("could not read API keys (%s); using the last ones read", type(exc).__name__)
            return self._keys
        with self._lock:
            self._keys, self._read, self._retry_at = keys, True, 0.0
        return keys

    def check(self, key: str | None, line: str | None, reread: bool = True) -> tuple[int, str] | None:
        """-> None when allowed, else (HTTP status, message). ``line=None``: the key alone.
        ``reread=False``: use the keys the previous check read (the second check of one request,
        once its line is known, costs no second database read)."""
        keys = self._active() if reread or not self._read else self._keys
        if keys is None:
            return None
        if not key:
            return 401, "missing X-API-Key header"
        lines = keys.get(_digest(key))
        if lines is None:
            return 401, "unknown or revoked API key"
        if line is not None and lines and line not in lines:
            return 403, f"this key may not report for line '{line}' (allowed: {', '.join(lines)})"
        return None
