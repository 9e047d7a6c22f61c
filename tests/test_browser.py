"""Browser test: worker.py and the dashboard run for real on 127.0.0.1, Chromium drives the page.

The worker replays scenarios/demo.json fast (2,000 payments per 80 ms tick), so its
retry-storm phase leaves a pending approval (pixelforge's suppression, the stronger fix) after ~12 s.
The test reads the dashboard's token from its stderr, checks that the page opened
without it has no buttons, opens it with the token (which the page never shows),
checks that it renders without an exception, clicks Approve and watches the worker
execute the signed command exactly once, recorded as the OS user, then pauses the agent.
It saves a screenshot (tmp_path, or $DASHBOARD_SCREENSHOT for the README).
Skips only when Debian's chromium is not installed at /usr/bin/chromium.
"""
from __future__ import annotations

import getpass
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
OPERATOR = getpass.getuser()          # the approver is the OS user running the dashboard, never typed in
HEADINGS = ("Approval queue", "Traffic", "Hypotheses", "Current decision", "Action history", "Learning")

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not CHROMIUM.exists(),
                                 reason="needs Debian's chromium at /usr/bin/chromium (.ci/run installs it)")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def wait_for(check, timeout: float, what: str, every: float = 0.1):
    """Poll `check()` until it returns something truthy; fail naming `what` after `timeout` seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = check()
        if value:
            return value
        time.sleep(every)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def settle(page) -> None:
    """Wait until no element is left over from the previous run (Streamlit marks those data-stale)."""
    wait_for(lambda: page.locator("[data-stale='true']").count() == 0, 10, "the page to settle", every=0.05)


def screenshot(page, path: Path) -> None:
    """The whole page (Streamlit scrolls inside its main block, so grow the viewport), in 128 colours."""
    from PIL import Image

    height = page.evaluate("document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": 1500, "height": min(int(height) + 40, 6000)})
    page.wait_for_timeout(1500)                       # charts re-fit the new size
    settle(page)
    page.screenshot(path=str(path), full_page=True)
    Image.open(path).convert("RGB").quantize(colors=128).save(path, optimize=True)
    assert path.stat().st_size > 10_000


@pytest.fixture
def live(tmp_path):
    """A running worker and dashboard on a fresh state folder; both stopped (by pid) afterwards."""
    state = tmp_path / "state"
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    logs = {name: open(tmp_path / f"{name}.log", "w") for name in ("worker", "dashboard")}
    worker = subprocess.Popen([sys.executable, "worker.py", "--scenario", "scenarios/demo.json", "--tps", "25000",
                               "--tick-seconds", "0.08", "--state-dir", str(state)],
                              cwd=ROOT, env=env, stdout=logs["worker"], stderr=subprocess.STDOUT)
    dashboard = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "dashboard.py", "--server.port", str(port),
                                  "--server.address", "127.0.0.1", "--server.headless", "true",
                                  "--browser.gatherUsageStats", "false", "--", "--state-dir", str(state)],
                                 cwd=ROOT, env=env, stdout=logs["dashboard"], stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: healthy(f"http://127.0.0.1:{port}/_stcore/health"), 30, "the dashboard's health check")
        yield {"url": f"http://127.0.0.1:{port}/", "state": state, "logs": tmp_path, "tmp": tmp_path,
               "token": lambda: token_from(tmp_path / "dashboard.log")}
    finally:
        for proc in (dashboard, worker):
            proc.terminate()
        for proc in (dashboard, worker):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        for f in logs.values():
            f.close()


def token_from(log: Path) -> str | None:
    """The token the dashboard prints on stderr when its first session starts (as an operator copies it)."""
    found = re.findall(r"\?token=([0-9a-f]+)", log.read_text())
    return found[-1] if found else None


def test_page_renders_and_approval_round_trip(live):
    from playwright.sync_api import sync_playwright

    state = live["state"]
    with sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(str(live["tmp"] / "chromium-profile"),  # a fresh profile
                                                       executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
                                                       viewport={"width": 1500, "height": 1000})
        try:
            page = browser.new_page()
            page.goto(live["url"])                      # without the token: read-only
            page.get_by_text("Read-only").first.wait_for(timeout=60_000)
            assert page.locator(".st-key-pause-switch button").count() == 0
            token = wait_for(live["token"], 20, "the dashboard to print its token")
            page.goto(f"{live['url']}?token={token}")  # before the agent has anything to ask: the page must update live
            page.locator("[class*='st-key-approve-'] button").first.wait_for(state="visible", timeout=60_000)
            assert token not in page.content() and "token=" not in page.url
            action = read(state / "actions.json")["pending"][0]
            approve = page.locator(f".st-key-approve-{action['id']} button")
            approve.wait_for(state="visible", timeout=10_000)
            settle(page)
            for heading in HEADINGS:
                page.get_by_role("heading", name=heading, exact=True).wait_for(timeout=15_000)
            wait_for(lambda: page.locator("[data-testid='stVegaLiteChart'] canvas, "
                                          "[data-testid='stVegaLiteChart'] svg").count() >= 2, 20, "two charts drawn")
            assert page.locator("[data-testid='stException']").count() == 0
            assert page.locator("[data-testid='stVegaLiteChart']").count() >= 2
            screenshot(page, Path(os.environ.get("DASHBOARD_SCREENSHOT") or live["tmp"] / "dashboard.png"))

            clicked = time.monotonic()
            approve.click()
            done = wait_for(lambda: next((a for a in read(state / "actions.json").get("actions", [])
                                          if a["id"] == action["id"] and a["status"] != "pending_approval"), None),
                            10, f"the worker to execute {action['id']}")
            took = time.monotonic() - clicked
            assert done["status"] == "executed"
            assert done["approval"]["by"] == OPERATOR and done["approval"]["at"]
            page.get_by_text(f"approved: {action['id']} executed").first.wait_for(timeout=10_000)
            log = read(state / "commands.json").get("log", [])
            accepted = [e for e in log if e["action_id"] == action["id"] and e["result"] == "accepted"]
            assert len(accepted) == 1, log
            print(f"approval round trip: click -> executed in {took:.1f} s")

            page.locator(".st-key-pause-switch button").click()
            wait_for(lambda: read(state / "status.json").get("paused"), 10, "the worker to pause")
            page.get_by_text("Automation is paused").first.wait_for(timeout=10_000)
            assert page.locator("[data-testid='stException']").count() == 0
            screenshot(page, live["tmp"] / "dashboard-after.png")
        finally:
            browser.close()
    for name in ("worker", "dashboard"):
        text = (live["logs"] / f"{name}.log").read_text()
        assert "Traceback" not in text, f"{name} log:\n{text[-3000:]}"
