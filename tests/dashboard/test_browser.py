"""End to end in headless Chromium: log in, visit every page (a screenshot of each under
var/test-screenshots/, never a tracked file), review one inspection, and find the review in the
database. The README's pictures come from the demo instead: ``python -m dashboard.screenshots``."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from inspector.store import Review
from inspector.store.session import make_engine, session_factory
from tests.dashboard.conftest import PASSWORDS

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / os.environ.get("INSPECTOR_SCREENSHOTS", "var/test-screenshots")
PAGES = ["Overview", "Inspections", "Review queue", "Drift", "Retraining & models", "Products"]


def _browser() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.skip("headless Chromium absent: `apt-get install chromium chromium-driver` (.ci/run installs them)")
    return chromium, driver


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def dashboard_url(station):
    port = _free_port()
    # the real entry point (`inspector-dashboard`), as an operator starts it
    cmd = [sys.executable, "-m", "dashboard.cli", "--home", str(station["home"]), "--port", str(port),
           "--address", "127.0.0.1"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/_stcore/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail("the dashboard did not start: " + proc.stdout.read().decode()[-2000:])
    yield url
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def browser(tmp_path):
    chromium, driver = _browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--no-first-run", "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'chrome'}",
                "--window-size=1400,1000"):  # fmt: skip
        opts.add_argument(arg)
    b = webdriver.Chrome(service=Service(driver), options=opts)
    yield b
    b.quit()


def _wait_for(browser, xpath: str, timeout: float = 30):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, timeout).until(ec.presence_of_element_located((By.XPATH, xpath)))


def _settle(browser, seconds: float = 1.5) -> None:
    """Streamlit re-renders over its websocket: wait until it reports no running script."""
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if not browser.find_elements(By.CSS_SELECTOR, '[data-testid="stStatusWidget"]'):
            break
        time.sleep(0.2)
    time.sleep(seconds)


def test_login_visit_every_page_and_review_one(station, dashboard_url, browser):
    browser.get(dashboard_url)
    _wait_for(browser, "//input[@aria-label='User name']").send_keys("erik")
    browser.find_element("xpath", "//input[@aria-label='Password']").send_keys(PASSWORDS["erik"])
    browser.find_element("xpath", "//button[.//p[text()='Log in']]").click()
    _wait_for(browser, "//h2[contains(., 'Overview')] | //h1[contains(., 'Overview')]")
    _settle(browser)
    SHOTS.mkdir(parents=True, exist_ok=True)
    for title in PAGES:
        browser.find_element("xpath", f"//a[@data-testid='stSidebarNavLink'][contains(., '{title}')]").click()
        _wait_for(browser, f"//h2[contains(., '{title}')] | //h1[contains(., '{title}')]")
        _settle(browser)
        assert not browser.find_elements("xpath", "//*[@data-testid='stException']"), title
        browser.save_screenshot(str(SHOTS / f"{title.lower().replace(' & ', '-').replace(' ', '-')}.png"))

    browser.find_element("xpath", "//a[@data-testid='stSidebarNavLink'][contains(., 'Review queue')]").click()
    _wait_for(browser, "//button[.//p[contains(., 'Good part')]]").click()
    _wait_for(browser, "//*[contains(., 'Last review: inspection')]")
    engine = make_engine(station["url"])
    with session_factory(engine)() as s:
        reviews = s.scalars(select(Review)).all()
    engine.dispose()
    assert [(r.reviewer, r.label) for r in reviews] == [("erik", "ok")]
