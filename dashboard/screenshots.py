"""Screenshots of every dashboard page on a station's own data (the README's come from the demo):

    inspector demo --home var/demo-shots
    python -m dashboard.screenshots --home var/demo-shots --out docs/screenshots

Starts ``inspector-dashboard`` on the home, logs in as a screenshot user it (re)creates with a
random password, and saves one PNG per page. Needs headless Chromium and selenium (the dev extra).
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
from pathlib import Path

import httpx

PAGES = ["Overview", "Inspections", "Review queue", "Drift", "Retraining & models", "Products"]
USER = "screenshots"


def file_name(title: str) -> str:
    return title.lower().replace(" & ", "-").replace(" ", "-") + ".png"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def _dashboard(home: Path, port: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "dashboard.cli", "--home", str(home), "--port", str(port), "--address", "127.0.0.1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/_stcore/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit("the dashboard did not start within 60 s")


def take(home: Path, out: Path, width: int = 1400, height: int = 1000) -> list[Path]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    chromium, driver = shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver")
    if not (chromium and driver):
        raise SystemExit("headless Chromium absent: `apt-get install chromium chromium-driver`")
    password = _user(home)
    port = _free_port()
    proc = _dashboard(home, port)
    saved = []
    with tempfile.TemporaryDirectory() as profile:
        opts = webdriver.ChromeOptions()
        opts.binary_location = chromium
        args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-dev-shm-usage"]
        for arg in [*args, f"--user-data-dir={profile}", f"--window-size={width},{height}"]:
            opts.add_argument(arg)
        b = webdriver.Chrome(service=Service(driver), options=opts)

        def wait(xpath: str):
            return WebDriverWait(b, 60).until(ec.presence_of_element_located((By.XPATH, xpath)))

        def settle() -> None:  # Streamlit renders over its websocket: wait for the run to end
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and b.find_elements(By.CSS_SELECTOR, '[data-testid="stStatusWidget"]'):
                time.sleep(0.2)
            time.sleep(2)

        try:
            b.get(f"http://127.0.0.1:{port}")
            wait("//input[@aria-label='User name']").send_keys(USER)
            b.find_element(By.XPATH, "//input[@aria-label='Password']").send_keys(password)
            b.find_element(By.XPATH, "//button[.//p[text()='Log in']]").click()
            wait("//h2[contains(., 'Overview')] | //h1[contains(., 'Overview')]")
            out.mkdir(parents=True, exist_ok=True)
            for title in PAGES:
                b.find_element(By.XPATH, f"//a[@data-testid='stSidebarNavLink'][contains(., '{title}')]").click()
                wait(f"//h2[contains(., '{title}')] | //h1[contains(., '{title}')]")
                settle()
                if b.find_elements(By.XPATH, "//*[@data-testid='stException']"):
                    raise SystemExit(f"the {title} page shows an exception")
                b.save_screenshot(str(out / file_name(title)))
                saved.append(out / file_name(title))
        finally:
            b.quit()
            proc.terminate()
            proc.wait(10)
    return saved


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", type=Path, required=True, help="the station's working folder (e.g. the demo's)")
    ap.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    args = ap.parse_args(argv)
    for path in take(args.home.resolve(), args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
