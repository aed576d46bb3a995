"""The technician page in a real headless Chromium (Debian's ``chromium`` and
``chromium-driver``, through Selenium), against a running agent on a simulator scene with
a real mosquitto: log in; the live picture changes; a zone drawn by clicks and saved is a
valid config the agent then runs (an intrusion alert in it reaches a subscriber), with a
counting line drawn beside it, and a rollback undoes both; a privacy mask drawn by clicks
is saved and blacks out the live picture there; the self-test runs from the
page; a wrong password and a cross-site form post are refused; at a phone's width
(390x844) no view scrolls sideways.

``EDGE_AGENT_SCREENSHOTS=docs/img`` saves a screenshot of each view there
(docs/img/page-*.png, as in docs/web.md).
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from fakes.centre import Centre
from helpers import sim_camera, wait_until
from realdata import require_model, skip_or_fail

from edge_agent.app import Agent
from edge_agent.broker import LocalBroker
from edge_agent.config import parse_config
from edge_agent.config_check import check_config_file
from edge_agent.rules.config import LineCrossingRuleConfig
from edge_agent.web.auth import write_password_file

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.actions.action_builder import ActionBuilder  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

PASSWORD = "ladder-and-phone"
ROOT = "city/web-site/dev-1"
TIMEOUT_S = 60.0
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)
SCREENSHOTS = os.environ.get("EDGE_AGENT_SCREENSHOTS")


@dataclass
class Page:
    agent: Agent
    url: str
    config_path: Path
    centre: Centre


@pytest.fixture
def page(tmp_path: Path, broker: LocalBroker) -> Iterator[Page]:
    require_model("ssd_mobilenet_v1")
    data = {
        "site_id": "web-site",
        "device_id": "dev-1",
        "cameras": [sim_camera(loop=True)],
        "detector": {"model": "ssd_mobilenet_v1", "threads": 1},
        "mqtt": {"host": "127.0.0.1", "port": broker.port, "reconnect_min_delay_s": 0.5},
        "outbox": {"path": str(tmp_path / "outbox.db")},
        "references": {"directory": None},
        "web": {"enabled": True, "listen": "127.0.0.1:0"},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    write_password_file(tmp_path / "web-password", PASSWORD)
    centre = Centre(broker.port, ROOT)
    agent = Agent(parse_config(data), config_path=path)
    agent.start()
    try:
        assert agent.web is not None, "the page did not start (see the log)"
        yield Page(agent, agent.web.url, path, centre)
    finally:
        agent.stop()
        centre.close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        skip_or_fail("chromium and chromium-driver are not installed (scripts/setup.sh)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (*CHROMIUM_ARGS, f"--user-data-dir={tmp_path / 'chromium'}"):
        options.add_argument(argument)
    options.add_argument("--window-size=1280,900")
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(driver_path))
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(driver: WebDriver, name: str) -> None:
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(SCREENSHOTS) / f"page-{name}.png"))


def log_in(driver: WebDriver, page: Page, password: str = PASSWORD) -> None:
    driver.get(page.url + "/login")
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.ID, "login").click()


def logged_in(driver: WebDriver, page: Page) -> None:
    log_in(driver, page)
    wait_until(lambda: driver.current_url == page.url + "/", TIMEOUT_S, "the page after login")
    wait_until(lambda: loaded(driver, "live-cam1"), TIMEOUT_S, "the live picture")


def loaded(driver: WebDriver, element_id: str) -> bool:
    script = "const i = document.getElementById(arguments[0]); return !!i && i.naturalWidth > 0"
    return bool(driver.execute_script(script, element_id))


# Samples the picture's pixels through a canvas (same origin, so readable).
PIXELS = """
const img = document.getElementById(arguments[0]);
if (!img || !img.complete || img.naturalWidth === 0) return null;  // a new picture loading
const canvas = document.createElement("canvas");
canvas.width = 64; canvas.height = 36;
const context = canvas.getContext("2d");
context.drawImage(img, 0, 0, 64, 36);
return Array.from(context.getImageData(0, 0, 64, 36).data).join(",");
"""


def alerts(centre: Centre) -> list[dict[str, Any]]:
    """Alert steps (they share the events topic; docs/mqtt-api.md)."""
    steps = [json.loads(m.payload) for m in centre.inbox.all() if "/events/" in m.topic]
    return [s for s in steps if "rule" in s]


def test_a_wrong_password_is_refused(page: Page, browser: WebDriver) -> None:
    log_in(browser, page, "not-the-password")
    # The form posts and a new page loads after the slow hash: wait for it, not the click.
    wait_until(lambda: bool(browser.find_elements(By.ID, "login-error")), TIMEOUT_S, "the refusal")
    message = browser.find_element(By.ID, "login-error")
    assert "Wrong password" in message.text
    assert browser.current_url == page.url + "/login"
    assert browser.get_cookies() == []
    screenshot(browser, "login-refused")
    browser.get(page.url + "/")  # still not in
    assert browser.current_url == page.url + "/login"


def test_logging_in_shows_a_live_picture_that_changes(page: Page, browser: WebDriver) -> None:
    browser.get(page.url + "/login")
    screenshot(browser, "login")
    logged_in(browser, page)
    cookie = browser.get_cookie("edge_agent_session")
    assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    first_src = browser.find_element(By.ID, "live-cam1").get_attribute("src")
    samples: list[str] = []

    def sampled() -> bool:  # a loaded picture (it is replaced every second)
        pixels = browser.execute_script(PIXELS, "live-cam1")
        if pixels is not None:
            samples.append(pixels)
        return bool(samples)

    wait_until(sampled, TIMEOUT_S, "a loaded live picture")
    first = samples[0]

    def changed() -> bool:
        src = browser.find_element(By.ID, "live-cam1").get_attribute("src")
        pixels = browser.execute_script(PIXELS, "live-cam1")
        return src != first_src and pixels is not None and pixels != first

    wait_until(changed, TIMEOUT_S, "a new live picture")
    screenshot(browser, "live")
    browser.find_element(By.ID, "nav-health").click()
    condition = browser.find_element(By.ID, "condition")
    wait_until(lambda: "Condition:" in condition.text, TIMEOUT_S, "the health panel")
    # In words too, for the technician who does not know the condition names (install.md).
    wait_until(lambda: "every camera sends frames" in condition.text, TIMEOUT_S, "ok in words")
    rows = browser.find_elements(By.CSS_SELECTOR, "#camera-health tbody tr")
    wait_until(lambda: "cam1" in browser.find_element(By.ID, "camera-health").text, 10, "cam1")
    assert rows or browser.find_elements(By.CSS_SELECTOR, "#camera-health tbody tr")
    screenshot(browser, "health")
    browser.find_element(By.ID, "nav-events").click()
    events = browser.find_element(By.ID, "event-list")
    wait_until(lambda: "person" in events.text, TIMEOUT_S, "the person's event in the list")
    screenshot(browser, "events")


def click_at(driver: WebDriver, element_id: str, x: float, y: float) -> None:
    """A real mouse click at normalised (x, y) of an element, in viewport pixels (an
    element offset would be from the centre of its *visible* part)."""
    rect = driver.execute_script(
        "const e = document.getElementById(arguments[0]);"
        "e.scrollIntoView({block: 'center'});"
        "const r = e.getBoundingClientRect();"
        "return [r.left, r.top, r.width, r.height];",
        element_id,
    )
    left, top, width, height = rect
    actions = ActionBuilder(driver)
    actions.pointer_action.move_to_location(round(left + x * width), round(top + y * height))
    actions.pointer_action.click()
    actions.perform()


def test_a_zone_drawn_by_clicks_is_saved_applied_and_fires_an_intrusion_alert(
    page: Page, browser: WebDriver
) -> None:
    logged_in(browser, page)
    browser.find_element(By.ID, "nav-zones").click()
    wait_until(lambda: loaded(browser, "edit-image"), TIMEOUT_S, "the editor's picture")
    corners = [(0.05, 0.05), (0.95, 0.05), (0.95, 0.95), (0.05, 0.95)]
    for x, y in corners:
        click_at(browser, "edit-svg", x, y)
    browser.find_element(By.ID, "zone-name").send_keys("drawn")
    Select(browser.find_element(By.ID, "zone-rule")).select_by_value("intrusion")
    browser.find_element(By.ID, "zone-add").click()
    Select(browser.find_element(By.ID, "draw-kind")).select_by_value("line")
    for x, y in ((0.1, 0.8), (0.9, 0.8)):
        click_at(browser, "edit-svg", x, y)
    browser.find_element(By.ID, "zone-name").send_keys("kerb")
    browser.find_element(By.ID, "zone-add").click()
    screenshot(browser, "zones")
    before = page.config_path.read_bytes()
    browser.find_element(By.ID, "zone-save").click()
    status = browser.find_element(By.ID, "edit-status")
    wait_until(lambda: "Saved" in status.text or "Not saved" in status.text, TIMEOUT_S, "the save")
    assert "Saved and applied" in status.text, status.text  # else the page shows why not

    # The file is a valid config holding the drawn zone; the old one is kept beside it.
    check = check_config_file(page.config_path)
    assert check.ok, check.problems
    assert check.config is not None
    (zone,) = check.config.cameras[0].zones
    assert zone.name == "drawn"
    for (x, y), (want_x, want_y) in zip(zone.polygon, corners, strict=True):
        assert abs(x - want_x) < 0.02 and abs(y - want_y) < 0.02
    intrusion, line = check.config.cameras[0].rules
    assert (intrusion.kind, getattr(intrusion, "zone", None)) == ("intrusion", "drawn")
    assert isinstance(line, LineCrossingRuleConfig) and line.name == "kerb"
    assert abs(line.a[0] - 0.1) < 0.02 and abs(line.b[0] - 0.9) < 0.02
    assert abs(line.a[1] - 0.8) < 0.02 and abs(line.b[1] - 0.8) < 0.02
    assert page.config_path.with_name("config.yaml.prev").read_bytes() == before
    # The running agent uses it: its config, and an alert in the new zone at a subscriber.
    assert [z.name for z in page.agent.config.cameras[0].zones] == ["drawn"]
    wait_until(
        lambda: any(
            a.get("kind") == "intrusion" and a.get("zone") == "drawn" and a.get("type") == "new"
            for a in alerts(page.centre)
        ),
        TIMEOUT_S,
        "an intrusion alert in the drawn zone",
    )
    screenshot(browser, "zones-saved")
    stale = browser.find_element(By.ID, "live-cam1").get_attribute("src")
    browser.find_element(By.ID, "nav-live").click()
    wait_until(
        lambda: (
            browser.find_element(By.ID, "live-cam1").get_attribute("src") != stale
            and loaded(browser, "live-cam1")
            and browser.execute_script("return document.getElementById('live-cam1').complete")
        ),
        TIMEOUT_S,
        "a live picture drawn after the save",
    )
    screenshot(browser, "live-with-zone")

    browser.find_element(By.ID, "nav-zones").click()
    browser.find_element(By.ID, "zone-rollback").click()
    wait_until(lambda: "olled back" in status.text, TIMEOUT_S, "the rollback")
    assert "Rolled back" in status.text, status.text
    assert page.agent.config.cameras[0].zones == []
    assert page.agent.config.cameras[0].rules == []
    assert yaml.safe_load(page.config_path.read_text()) == yaml.safe_load(before)


# The darkest channel's brightest value over the inside of a normalised box of a picture.
BRIGHTEST_IN = """
const img = document.getElementById(arguments[0]);
const [x0, y0, x1, y1] = arguments[1];
if (!img || !img.complete || img.naturalWidth === 0) return -1;  // a new picture loading
const canvas = document.createElement("canvas");
canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
const context = canvas.getContext("2d");
context.drawImage(img, 0, 0);
const left = Math.round(x0 * canvas.width), top = Math.round(y0 * canvas.height);
const data = context.getImageData(
  left, top, Math.round(x1 * canvas.width) - left, Math.round(y1 * canvas.height) - top).data;
let brightest = 0;
for (let i = 0; i < data.length; i += 4) {
  brightest = Math.max(brightest, data[i], data[i + 1], data[i + 2]);
}
return brightest;
"""


def test_a_privacy_mask_drawn_by_clicks_blacks_out_the_live_picture(
    page: Page, browser: WebDriver
) -> None:
    logged_in(browser, page)
    inside = [0.2, 0.2, 0.4, 0.4]  # well inside the mask: its grey outline is not there
    wait_until(  # not black yet (the live picture is replaced every second: read a loaded one)
        lambda: browser.execute_script(BRIGHTEST_IN, "live-cam1", inside) > 60,
        TIMEOUT_S,
        "the live picture, not black inside the mask-to-be",
    )
    browser.find_element(By.ID, "nav-zones").click()
    wait_until(lambda: loaded(browser, "edit-image"), TIMEOUT_S, "the editor's picture")
    Select(browser.find_element(By.ID, "draw-kind")).select_by_value("mask")
    corners = [(0.1, 0.1), (0.5, 0.1), (0.5, 0.5), (0.1, 0.5)]
    for x, y in corners:
        click_at(browser, "edit-svg", x, y)
    browser.find_element(By.ID, "zone-add").click()
    assert "privacy mask 1: 4 corners" in browser.find_element(By.ID, "zone-list").text
    screenshot(browser, "mask")
    browser.find_element(By.ID, "zone-save").click()
    status = browser.find_element(By.ID, "edit-status")
    wait_until(lambda: "Saved" in status.text or "Not saved" in status.text, TIMEOUT_S, "the save")
    assert "Saved and applied" in status.text, status.text

    (mask,) = yaml.safe_load(page.config_path.read_text())["cameras"][0]["privacy"]["masks"]
    for (x, y), (want_x, want_y) in zip(mask, corners, strict=True):
        assert abs(x - want_x) < 0.02 and abs(y - want_y) < 0.02
    browser.find_element(By.ID, "nav-live").click()
    wait_until(
        lambda: 0 <= browser.execute_script(BRIGHTEST_IN, "live-cam1", inside) < 24,
        TIMEOUT_S,
        "the live picture black inside the mask",
    )


def test_the_self_test_runs_from_the_page(page: Page, browser: WebDriver) -> None:
    logged_in(browser, page)
    browser.find_element(By.ID, "nav-selftest").click()
    status = browser.find_element(By.ID, "selftest-status")
    wait_until(lambda: "Not run" in status.text, TIMEOUT_S, "the self-test view")
    browser.find_element(By.ID, "selftest-run").click()
    wait_until(lambda: "passed" in status.text or "FAILED" in status.text, TIMEOUT_S, "its verdict")
    lines = browser.find_element(By.ID, "selftest-list").text.splitlines()
    assert any(line.startswith("PASS config") for line in lines), lines
    for name in ("camera cam1", "model", "outbox", "clock", "broker"):
        assert any(f" {name}" in line for line in lines), (name, lines)
    screenshot(browser, "selftest")


class _CrossSite(BaseHTTPRequestHandler):
    """Another origin's page: a form that posts itself to the agent's save endpoint."""

    target = ""

    def do_GET(self) -> None:
        body = (
            "<!doctype html><html><body>"
            f'<form id="f" method="post" action="{self.target}/api/config/zones"'
            ' enctype="text/plain">'
            '<input name=\'{"camera":"cam1","zones":[],"x":"\' value=\'"}\'>'
            "</form><script>document.getElementById('f').submit()</script></body></html>"
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def cross_site_page(page: Page) -> Iterator[str]:
    handler = type("Handler", (_CrossSite,), {"target": page.url})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_a_cross_site_form_post_is_refused(
    page: Page, browser: WebDriver, cross_site_page: str
) -> None:
    logged_in(browser, page)  # the session cookie is there: only the checks stop the post
    before = page.config_path.read_bytes()
    config = page.agent.config
    browser.get(cross_site_page)
    wait_until(
        lambda: "cross-site request refused" in browser.page_source, TIMEOUT_S, "the refusal"
    )
    assert page.config_path.read_bytes() == before
    assert not page.config_path.with_name("config.yaml.prev").exists()
    assert page.agent.config is config


def test_every_view_fits_a_phone_screen(page: Page, browser: WebDriver) -> None:
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True},
    )
    browser.get(page.url + "/login")
    overflow = "return document.documentElement.scrollWidth - window.innerWidth"
    assert browser.execute_script("return window.innerWidth") == 390
    assert browser.execute_script(overflow) <= 0
    screenshot(browser, "phone-login")
    logged_in(browser, page)
    for view in ("live", "health", "events", "zones", "selftest"):
        browser.get(f"{page.url}/#{view}")
        wait_until(lambda view=view: browser.find_element(By.ID, view).is_displayed(), 10.0, view)
        if view == "zones":
            wait_until(lambda: loaded(browser, "edit-image"), TIMEOUT_S, "the editor's picture")
        else:
            wait_until(lambda: loaded(browser, "live-cam1"), TIMEOUT_S, "the live picture")
        assert browser.execute_script(overflow) <= 0, f"the {view} view scrolls sideways"
        screenshot(browser, f"phone-{view}")
