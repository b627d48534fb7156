"""What every page shares: the database session, the logged-in user, cached queries, errors.

Pages read through ``inspector.store.queries`` (and ``monitoring`` / ``retraining``) and write
through ``inspector.services`` (which checks the role); no SQL is written here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import streamlit as st

from inspector.errors import InspectorError
from inspector.services import Account, authenticate, current
from inspector.settings import Settings
from inspector.store.files import ImageStore
from inspector.store.rows import InspectionRow
from inspector.store.session import DatabaseError, make_engine, session_factory

PERIODS = {"last 24 hours": timedelta(days=1), "last 7 days": timedelta(days=7), "last 30 days": timedelta(days=30)}


def settings() -> Settings:
    return Settings()  # INSPECTOR_* variables, read per run (cheap): tests and operators can point it elsewhere


@st.cache_resource
def _sessions(url: str):
    return session_factory(make_engine(url))


def session():
    """A new database session (use in ``with``)."""
    return _sessions(settings().database_url)()


def images() -> ImageStore:
    return ImageStore(settings().images_dir)


def image_bytes(row: InspectionRow) -> bytes | None:
    """The stored image of an inspection, or None when it was never stored or retention removed it."""
    try:
        return images().read(row.image_sha256) if row.image_sha256 else None
    except FileNotFoundError:
        return None


def training_image(path: str, max_bytes: int = 20_000_000) -> bytes | None:
    """A training image the model card names (e.g. a part its threshold stands on), or None when
    this machine does not hold it (the dashboard may run away from the training data)."""
    try:
        f = Path(path)
        return f.read_bytes() if f.is_file() and f.stat().st_size <= max_bytes else None
    except OSError:
        return None


def query(fn: Callable[..., Any], *args, **kwargs) -> Any:
    """Run a store query in its own session, with a readable message when the database fails."""
    try:
        with session() as s:
            return fn(s, *args, **kwargs)
    except DatabaseError as exc:
        st.error(f"The database cannot be read right now ({type(exc).__name__}). Retrying shortly.")
        st.caption(str(getattr(exc, "orig", exc))[:300])
        st.stop()


def act(fn: Callable[..., Any], *args, success: str = "", **kwargs) -> Any:
    """Run a write from ``inspector.services`` and commit; errors become messages, never tracebacks."""
    try:
        with session() as s:
            result = fn(s, *args, **kwargs)
            s.commit()
    except InspectorError as exc:
        st.error(str(exc))
        return None
    except DatabaseError as exc:
        st.error(f"Not saved: the database is unreachable ({type(exc).__name__}). Try again.")
        return None
    if success:
        st.toast(success)
    return result


def cached(ttl: int = 10):
    """st.cache_data for a store query (args must be hashable): live pages refresh every ``ttl`` s."""

    def wrap(fn):
        @st.cache_data(ttl=ttl, show_spinner=False)
        def inner(url: str, *args, **kwargs):
            return query(fn, *args, **kwargs)

        @functools.wraps(fn)
        def call(*args, **kwargs):
            return inner(settings().database_url, *args, **kwargs)

        return call

    return wrap


def user() -> Account:
    """The logged-in account; otherwise the login form, and the page stops there."""
    account = st.session_state.get("user")
    if isinstance(account, Account):
        now = query(current, account.username)  # demoted or deactivated since login: it shows at once
        if now is not None:
            st.session_state["user"] = now
            return now
        st.session_state.pop("user", None)
        st.warning(f"{account.username} is no longer an active user; log in again.")
    st.title("inspector")
    with st.form("login"):
        name = st.text_input("User name", key="login_user")
        password = st.text_input("Password", type="password", key="login_password")
        submitted = st.form_submit_button("Log in", type="primary")
    if submitted:
        found = query(authenticate, name, password)
        if found is None:
            st.error("Unknown user or wrong password.")
        else:
            st.session_state["user"] = found
            st.rerun()
    st.stop()


def engineer_only(account: Account) -> bool:
    """Shown where a control needs an engineer; the service call checks again on the server."""
    if account.role != "engineer":
        st.info("Only engineers can change this.")
        return False
    return True


NAMES = {"id": "Id", "product_id": "Product", "uuid": "Inspection", "defect_score": "Defect score"}


def readable(df):
    """Column names a person reads ("captured_at" -> "Captured at"), for tables shown as they are."""
    return df.rename(columns=lambda c: NAMES.get(c, c.replace("_", " ").capitalize()))


def since(period: str) -> datetime:
    return datetime.now(UTC) - PERIODS[period]


def filters_bar(key: str) -> tuple[str, str | None, str | None]:
    """Period, product and line pickers shared by the live pages."""
    from inspector.store.queries import streams

    known = query(streams)
    c1, c2, c3 = st.columns(3)
    period = c1.selectbox("Period", list(PERIODS), index=1, key=f"{key}_period")
    product = c2.selectbox("Product", ["all", *known.products], key=f"{key}_product")
    line = c3.selectbox("Line", ["all", *known.lines], key=f"{key}_line")
    return period, None if product == "all" else product, None if line == "all" else line
