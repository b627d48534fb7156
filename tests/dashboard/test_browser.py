"""End to end in headless Chromium: log in, visit every page (a screenshot of each under
var/test-screenshots/, never a tracked file), review one inspection, and find the review in the
database. The README's pictures come from the demo instead, through the same helpers:
``python -m dashboard.screenshots``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import select

from dashboard import screenshots as ui
from inspector.store import Review
from inspector.store.session import make_engine, session_factory
from tests.dashboard.conftest import PASSWORDS

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / os.environ.get("INSPECTOR_SCREENSHOTS", "var/test-screenshots")


@pytest.fixture
def browser():
    try:
        with ui.chromium() as b:
            yield b
    except ui.BrowserMissing as exc:
        pytest.skip(f"{exc} (.ci/run installs them)")


def test_login_visit_every_page_and_review_one(station, browser):
    with ui.dashboard(station["home"]) as url:
        ui.log_in(browser, url, "erik", PASSWORDS["erik"])
        assert len(ui.every_page(browser, SHOTS)) == len(ui.PAGES)  # each rendered without an exception

        browser.find_element("xpath", "//a[@data-testid='stSidebarNavLink'][contains(., 'Review queue')]").click()
        ui.wait_for(browser, "//button[.//p[contains(., 'Good part')]]").click()
        ui.wait_for(browser, "//*[contains(., 'Last review: inspection')]")
    engine = make_engine(station["url"])
    with session_factory(engine)() as s:
        reviews = s.scalars(select(Review)).all()
    engine.dispose()
    assert [(r.reviewer, r.label) for r in reviews] == [("erik", "ok")]
