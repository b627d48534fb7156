"""Screenshots of every dashboard page on a station's own data (the README's come from the demo):

    inspector demo --home var/demo-shots
    python -m dashboard.screenshots --home var/demo-shots --out docs/screenshots

Starts ``inspector-dashboard`` on the home, logs in as a screenshot user it (re)creates with a
random password, and saves one PNG per page. Needs headless Chromium and selenium (the dev extra).
The browser test drives the dashboard with the same helpers.
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

PAGES = ["Overview", "Inspections", "Review queue", "Drift", "Retraining & models", "Products"]
USER = "screenshots"


class BrowserMissing(RuntimeError):
    pass


def file_name(title: str) -> str:
    return title.lower().replace(" & ", "-").replace(" ", "-") + ".png"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def dashboard(home: Path, timeout: float = 60) -> Iterator[str]:
    """The real entry point (``inspector-dashboard``) on ``home``, as an operator starts it -> its URL."""
    port = free_port()
    cmd = [sys.executable, "-m", "dashboard.cli", "--home", str(home), "--port", str(port), "--address", "127.0.0.1"]
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as log:  # a file, not a pipe: a chatty server never blocks on it
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    if httpx.get(f"{url}/_stcore/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.3)
                if time.monotonic() > deadline or proc.poll() is not None:
                    proc.kill()
                    proc.wait(10)
                    log.seek(0)
                    raise RuntimeError("the dashboard did not start: " + log.read().decode(errors="replace")[-2000:])
            yield url
        finally:
            proc.terminate()
            proc.wait(10)


@contextmanager
def chromium(width: int = 1400, height: int = 1000) -> Iterator:
    """Headless Chromium under selenium, with a throwaway profile."""
    binary, driver = shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver")
    if not (binary and driver):
        raise BrowserMissing("headless Chromium absent: `apt-get install chromium chromium-driver`")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    with tempfile.TemporaryDirectory() as profile:
        opts = webdriver.ChromeOptions()
        opts.binary_location = binary
        args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-dev-shm-usage",
                "--disable-background-networking", f"--user-data-dir={profile}"]  # fmt: skip
        for arg in [*args, f"--window-size={width},{height}"]:
            opts.add_argument(arg)
        b = webdriver.Chrome(service=Service(driver), options=opts)
        try:
            yield b
        finally:
            b.quit()


def wait_for(b, xpath: str, timeout: float = 60):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(b, timeout).until(ec.presence_of_element_located((By.XPATH, xpath)))


def settle(b, seconds: float = 1.5, timeout: float = 60) -> None:
    """Streamlit renders over its websocket: wait until it reports no running script."""
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and b.find_elements(By.CSS_SELECTOR, '[data-testid="stStatusWidget"]'):
        time.sleep(0.2)
    time.sleep(seconds)


def log_in(b, url: str, user: str, password: str) -> None:
    b.get(url)
    wait_for(b, "//input[@aria-label='User name']").send_keys(user)
    b.find_element("xpath", "//input[@aria-label='Password']").send_keys(password)
    b.find_element("xpath", "//button[.//p[text()='Log in']]").click()
    wait_for(b, "//h2[contains(., 'Overview')] | //h1[contains(., 'Overview')]")
    settle(b)


def open_page(b, title: str) -> None:
    """Follow the sidebar link to ``title`` and wait for it to render; a page showing an exception
    is an error."""
    b.find_element("xpath", f"//a[@data-testid='stSidebarNavLink'][contains(., '{title}')]").click()
    wait_for(b, f"//h2[contains(., '{title}')] | //h1[contains(., '{title}')]")
    settle(b)
    if b.find_elements("xpath", "//*[@data-testid='stException']"):
        raise RuntimeError(f"the {title} page shows an exception")


def every_page(b, out: Path) -> list[Path]:
    """One PNG per page under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    saved = []
    for title in PAGES:
        open_page(b, title)
        b.save_screenshot(str(out / file_name(title)))
        saved.append(out / file_name(title))
    return saved


def _user(home: Path) -> str:
    from inspector.services import create_user
    from inspector.settings import Settings
    from inspector.store.migrate import upgrade
    from inspector.store.session import make_engine, session_factory

    url = Settings(home=home).database_url
    upgrade(url)
    engine = make_engine(url)
    password = secrets.token_urlsafe(12)
    with session_factory(engine)() as s:
        create_user(s, USER, password, "engineer")
        s.commit()
    engine.dispose()
    return password


def take(home: Path, out: Path) -> list[Path]:
    password = _user(home)
    with dashboard(home) as url, chromium() as b:
        log_in(b, url, USER, password)
        return every_page(b, out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", type=Path, required=True, help="the station's working folder (e.g. the demo's)")
    ap.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    args = ap.parse_args(argv)
    try:
        saved = take(args.home.resolve(), args.out)
    except (BrowserMissing, RuntimeError) as exc:
        raise SystemExit(str(exc)) from None
    for path in saved:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
