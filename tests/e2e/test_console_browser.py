"""The web console in a real headless browser (Chromium via Selenium) against the local cloud.

One local cloud and one small run: two uploads start two training runs that wait for approval, a
third upload is quarantined. In the browser: sign in as the uploader, open the pending approval,
be refused by four-eyes, switch to another identity, approve with a reason, and see the version
become production on the model page; decide the other version after someone else did (409 shown as
a message); open a drift report; filter the audit log. Markup planted in a model description, a
rejection reason and a dataset column name is shown as text on every page that shows it (no element
is created from it). Screenshots of the main pages are written to docs/console/ (README shows two
of them).

Chromium and chromedriver come from Debian's `chromium` and `chromium-driver` packages (.ci/run
installs them). Without them the test is skipped, saying so, except in CI (CI=true), where it fails.
"""

from __future__ import annotations

import io
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stepwise.commands.data import upload
from stepwise.local.session import LocalSession
from stepwise.target import Target
from tests.e2e.test_lifecycle_e2e import CONTRACT, SPEC, wait_for
from tests.unit.lifecycle_data import classification_table

pytestmark = pytest.mark.slow

MARKUP = '<img src=x onerror="document.body.dataset.xss=1">'
APPROVER = "alice"
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "console"
CHROMIUM = ("chromium", "chromium-browser", "google-chrome")


def _browser_paths() -> tuple[str, str] | None:
    binary = next((found for name in CHROMIUM if (found := shutil.which(name))), None)
    driver = shutil.which("chromedriver")
    return (binary, driver) if binary and driver else None


def _parquet(tmp: Path, name: str, table: pa.Table) -> Path:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    path = tmp / name
    path.write_bytes(buf.getvalue())
    return path


def seed(local: Target, tmp: Path) -> None:
    """The spec (its description carries markup), the contract, two good uploads by the target's
    identity (two runs waiting for approval) and a quarantined upload whose extra column is named
    with markup."""
    assert local.api("PUT", "/v1/specs/toy", {**SPEC, "description": f"Toy model {MARKUP}"}).status == 201
    assert local.api("PUT", "/v1/datasets/toy/contract", CONTRACT).ok
    for i, seed_ in enumerate((1, 2)):
        good = _parquet(tmp, f"good{i}.parquet", classification_table(400, seed_))
        uploaded = upload(local, good, "toy", timeout=180)
        assert uploaded.passed, uploaded.report
    bad = classification_table(60, 3)
    bad = bad.append_column(MARKUP, pa.array(range(60)))
    assert not upload(local, _parquet(tmp, "bad.parquet", bad), "toy", timeout=180).passed
    wait_for(lambda: len(local.api("GET", "/v1/approvals").body.get("approvals", [])) >= 2, timeout=400)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    paths = _browser_paths()
    if paths is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium and chromedriver are required in CI (.ci/run installs them)")
        pytest.skip("chromium and chromedriver are not installed (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = paths[0]
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,800"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(paths[1]), options=options)
    driver.set_window_size(1280, 800)
    yield driver
    driver.quit()


class Console:
    """The console in the browser: navigation, waits and the checks every page gets."""

    def __init__(self, driver: Any, base: str) -> None:
        self.driver, self.base = driver, base

    def wait(self, condition: Callable[[], Any], timeout: float = 60.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = condition()
            except Exception:  # an element not there yet
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out on {self.driver.current_url}: {self.text()[:2000]}")
            time.sleep(0.2)

    def text(self) -> str:
        return str(self.driver.find_element("id", "main").text)

    def open(self, route: str, expect: str = "") -> None:
        url = f"{self.base}#{route}"
        if self.driver.current_url == url:  # the same hash is no navigation: load the page again
            self.driver.refresh()
        else:
            self.driver.get(url)
        self.wait(lambda: self.driver.execute_script("return document.body.dataset.ready") == "true")
        self.wait(lambda: not self.driver.find_elements("css selector", "#main .loading") and expect in self.text())

    def sign_in(self, name: str) -> None:
        self.open("/signin", "Choose a local identity")
        field = self.driver.find_element("id", "identity-input")
        field.clear()
        field.send_keys(name + "\n")  # the keyboard submits the form
        self.wait(lambda: self.driver.find_element("id", "whoami").text == f"Signed in as {name}")

    def assert_shown_as_text(self, markup: str = MARKUP) -> None:
        """The markup is visible as text, and no element was made from it (no <img> anywhere, in
        the page or its shadow of iframes' parents) nor its handler run."""
        assert markup in self.text(), self.text()[:2000]
        assert not self.driver.find_elements("css selector", "#main img")
        assert self.driver.execute_script("return document.body.dataset.xss") is None

    def shot(self, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.driver.save_screenshot(str(SHOTS / f"{name}.png"))

    def click(self, element_id: str) -> None:
        self.driver.find_element("id", element_id).click()

    def type(self, element_id: str, text: str) -> None:
        field = self.driver.find_element("id", element_id)
        field.clear()
        field.send_keys(text)


def test_console_browser_four_eyes_approval_drift_report_audit_and_no_stored_xss(
    local: Target, local_session: LocalSession, browser: Any, tmp_path: Path
) -> None:
    assert local_session.api is not None
    seed(local, tmp_path)
    uploader = local.identity  # whose uploads started both runs
    ui = Console(browser, local_session.api.console_url)

    # Sign in as the uploader; the queue shows both pending requests
    ui.sign_in(uploader)
    ui.open("/approvals", "toy-model-1")
    assert "toy-model-2" in ui.text()
    ui.shot("approvals")
    browser.find_element("link text", "toy-model-1").click()
    ui.wait(lambda: browser.find_elements("id", "approve"))
    # a decision without a reason is refused in the page
    ui.click("approve")
    ui.wait(lambda: "A reason is required" in ui.text())
    # four-eyes: the uploader may not approve the run their upload started
    ui.type("decision-reason", "my own run")
    ui.click("approve")
    ui.wait(lambda: "Not allowed" in ui.text())
    assert "four-eyes" in ui.text()
    browser.execute_script("document.getElementById('decision-status').scrollIntoView({block: 'center'})")
    ui.shot("approval-refused")

    # Another identity approves with a reason; the version becomes production on the model page
    ui.sign_in(APPROVER)
    ui.open("/approvals/toy-model-1", "Metrics vs production")
    ui.type("decision-reason", "gates pass, data checked")
    ui.click("approve")
    ui.wait(lambda: "Approved: recorded under your identity" in ui.text())
    wait_for(lambda: local.api("GET", "/v1/models/toy-model/versions/1").body.get("status") == "PRODUCTION")
    ui.open("/models/toy-model", "Versions")
    assert browser.find_element("id", "production-version").text == "v1"
    ui.assert_shown_as_text()  # the spec's description
    ui.shot("model")

    # The other version: while its page is open, someone else rejects it first (with a reason that
    # carries markup); deciding in the page then says so (409), and the reason is shown as text
    # wherever it appears
    ui.open("/approvals/toy-model-2", "Metrics vs production")
    reply = local.api("POST", "/v1/approvals/toy-model-2/reject", {"reason": f"not better {MARKUP}"}, identity="bob")
    assert reply.ok, reply.body
    ui.type("decision-reason", "looks fine")
    ui.click("approve")
    ui.wait(lambda: "Already decided" in ui.text())
    wait_for(lambda: local.api("GET", "/v1/models/toy-model/versions/2").body.get("status") == "REJECTED")
    for route, expect in (
        ("/approvals/toy-model-2", "Rejected by"),
        ("/models/toy-model/versions/2", "Lineage"),
        ("/models/toy-model", "Releases and rollbacks"),
        ("/audit?model=toy-model", "Events"),
    ):
        ui.open(route, expect)
        ui.assert_shown_as_text()
    ui.open("/models/toy-model/versions/1", "Model card")
    ui.assert_shown_as_text()  # the card renders the spec's description
    ui.shot("version")

    # The quarantined upload names the column as text
    ui.open("/datasets/toy", "Quarantined uploads")
    ui.assert_shown_as_text()
    ui.shot("datasets")

    # A drift check; its report opens in a sandboxed frame, with the verdict per section
    reply = local.api("POST", "/v1/models/toy-model/drift", {"window_hours": 1})
    assert reply.status == 202, reply.body
    wait_for(lambda: local.api("GET", "/v1/models/toy-model/drift/checks").body.get("checks"), timeout=120)
    ui.open("/drift", "toy-model")
    browser.find_element("css selector", "#main a[href^='#/drift/toy-model/checks/']").click()
    ui.wait(lambda: "Verdict per section" in ui.text())
    frame = browser.find_element("id", "drift-report")
    assert frame.get_attribute("sandbox") == ""
    browser.switch_to.frame(frame)
    ui.wait(lambda: browser.find_element("tag name", "body").text.strip())
    browser.switch_to.default_content()
    ui.shot("drift")

    # The rollback button needs a reason; with no earlier production version the refusal is a message
    ui.open("/models/toy-model", "Roll back")
    ui.click("rollback")
    ui.wait(lambda: "A reason is required to roll back" in ui.text())
    ui.type("rollback-reason", "checking the button")
    ui.click("rollback")
    ui.wait(lambda: "no earlier production version to roll back to" in ui.text())
    assert browser.find_element("id", "production-version").text == "v1"

    # The audit log filtered by actor and action
    ui.open("/audit", "Events")
    ui.type("audit-actor", APPROVER)
    ui.type("audit-action", "approval.")
    ui.click("audit-apply")
    ui.wait(lambda: "actor=alice" in browser.current_url and "Events (" in ui.text())
    rows = browser.find_elements("css selector", "#main table tbody tr")
    assert rows and all(APPROVER in r.text and "approval." in r.text for r in rows), [r.text for r in rows]
    ui.shot("audit")

    # The overview at phone width still reads (no horizontal overflow of the page)
    ui.open("/", "Models")
    ui.shot("overview")
    browser.set_window_size(390, 844)
    ui.open("/", "Models")
    assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1")
    browser.set_window_size(1280, 800)
    # no page logged a CSP violation, a script or a markup error (refused API calls, such as the
    # four-eyes 403 above, are logged by the browser as network errors: expected)
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE" and e.get("source") != "network"]
    assert not errors, errors
