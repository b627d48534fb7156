"""What the dashboard may do, with the role check done here, on the server, for every call.

Operators view and review; engineers also promote, roll back, retrain, edit manuals and onboard
products. Each write is audited with the user's name. Reads go through ``inspector.store``'s
query functions; this module adds the writes that need a role.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from inspector.corrections import Correction, add_correction
from inspector.errors import DataError, InspectorError, ManualError
from inspector.manual import parse_manual
from inspector.store import ROLES, Inspection, Review, User
from inspector.store.repo import (
    InvalidRecordError,
    add_manual_version,
    add_review,
    audit,
    ensure_product,
    promote_model,
)
from inspector.store.retraining import rollback_model
from inspector.store.rows import UserRow

_hasher = PasswordHasher()


class PermissionDeniedError(InspectorError):
    pass


@dataclass(frozen=True)
class Account:
    username: str
    role: str  # operator | engineer


def current(session: Session, username: str) -> Account | None:
    """The account as the store holds it now (None: unknown or deactivated). A session's login
    is not a licence: roles and the active flag are read again for every action."""
    user = session.scalar(select(User).where(User.username == username, User.active.is_(True)))
    return None if user is None else Account(user.username, user.role)


def _require(session: Session, who: Account, role: str | None = None) -> Account:
    now = current(session, who.username)
    if now is None:
        raise PermissionDeniedError(f"{who.username} is no longer an active user")
    if role == "engineer" and now.role != "engineer":
        raise PermissionDeniedError(f"{who.username} is an operator: this needs an engineer")
    return now


def create_user(session: Session, username: str, password: str, role: str) -> None:
    if role not in ROLES:
        raise InvalidRecordError(f"role '{role}' must be one of {ROLES}")
    if not username or len(username) > 100:
        raise InvalidRecordError("user name must be 1-100 characters")
    if len(password) < 8:
        raise InvalidRecordError("password must be at least 8 characters")
    existing = session.scalar(select(User).where(User.username == username))
    if existing is None:
        session.add(User(username=username, password_hash=_hasher.hash(password), role=role))
    else:  # the same command resets a password or changes a role
        existing.password_hash, existing.role, existing.active = _hasher.hash(password), role, True
    audit(session, "admin", "user_set", username, {"role": role})
    session.flush()


def list_users(session: Session) -> list[UserRow]:
    return [UserRow.of(u) for u in session.scalars(select(User).order_by(User.username))]


def authenticate(session: Session, username: str, password: str) -> Account | None:
    user = session.scalar(select(User).where(User.username == username, User.active.is_(True)))
    if user is None:
        _hasher.hash(password)  # same time whether or not the user exists
        return None
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return None
    return Account(user.username, user.role)


def review(
    session: Session, who: Account, inspection_id: int, label: str, defect_type: str | None, comment: str | None
) -> int:
    _require(session, who)
    return add_review(session, inspection_id, who.username, label, defect_type or None, comment or None).id


def undo_review(session: Session, who: Account, review_id: int) -> int:
    """Take back one's own review (the audit log keeps that it was given and undone). -> its inspection."""
    who = _require(session, who)
    r = session.get(Review, review_id)
    if r is None:
        raise InvalidRecordError(f"review {review_id} does not exist")
    if r.reviewer != who.username and who.role != "engineer":
        raise PermissionDeniedError("only the reviewer or an engineer can undo a review")
    session.execute(delete(Review).where(Review.id == review_id))
    audit(session, who.username, "review_undo", f"inspection:{r.inspection_id}", {"review": review_id})
    return r.inspection_id


def set_golden(session: Session, who: Account, inspection_id: int, golden: bool) -> bool:
    """Put an inspection in (or take it out of) its product's fixed golden set, which every
    challenger must not do worse on. Its latest review is its label; it is never trained on."""
    _require(session, who, "engineer")
    row = session.get(Inspection, inspection_id)
    if row is None:
        raise InvalidRecordError(f"inspection {inspection_id} does not exist")
    row.golden = golden
    audit(session, who.username, "golden_set" if golden else "golden_unset", f"inspection:{inspection_id}")
    return golden


def promote(session: Session, who: Account, model_id: int) -> str:
    _require(session, who, "engineer")
    return promote_model(session, model_id, who.username).name


def rollback(session: Session, who: Account) -> str:
    _require(session, who, "engineer")
    return rollback_model(session, who.username).name


def save_manual(session: Session, who: Account, product: str, text: str) -> int:
    """A new manual version (validated first). -> its version number."""
    _require(session, who, "engineer")
    try:
        parse_manual(text, f"manual of {product}", product)
    except ManualError as exc:
        raise InvalidRecordError(str(exc)) from None
    return add_manual_version(session, product, text, who.username).version


def onboard_product(session: Session, who: Account, product: str, name: str, manual_text: str) -> str:
    _require(session, who, "engineer")
    ensure_product(session, product, name)
    save_manual(session, who, product, manual_text)
    audit(session, who.username, "product_onboard", product, {"name": name})
    return product


def correct_label(session: Session, who: Account, image: str, defect_type: str, comment: str = "") -> Correction:
    """Record that a training image is (or is not) defective, beside the data it corrects; every
    later training and retraining on that data reads it. Engineers only; audited."""
    _require(session, who, "engineer")
    try:
        c = add_correction(Path(image), defect_type, who.username, comment)
    except DataError as exc:
        raise InvalidRecordError(str(exc)) from None
    audit(
        session, who.username, "label_correction", f"image:{image}", {"defect_type": defect_type, "comment": c.comment}
    )
    return c


def request_retrain(settings, who: Account) -> threading.Thread:
    """Start a retraining run in the background (it takes minutes); its row shows its progress."""
    from inspector.retrain import run_retrain
    from inspector.store.session import make_engine, session_factory

    engine = make_engine(settings.database_url)
    try:
        with session_factory(engine)() as s:
            _require(s, who, "engineer")
    finally:
        engine.dispose()

    def run() -> None:
        engine = make_engine(settings.database_url)
        try:
            run_retrain(settings, session_factory(engine), trigger=f"dashboard: {who.username}", actor=who.username)
        finally:
            engine.dispose()

    thread = threading.Thread(target=run, name="retrain", daemon=True)
    thread.start()
    return thread
