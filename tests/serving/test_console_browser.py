"""The operator console in a real headless Chromium against the real served app (Ray Serve,
vLLM, SQLite): log in, list sessions, read a trace and a rule denial, take a ticket and reply
as a human while the customer writes, validate rules, chat as a customer; and a script in a
customer's message shown as text, never run. A screenshot of each page is saved under
``$WOW_RAY_TEST_ARTIFACTS/console`` (default ``test-artifacts/console``).

Needs Debian's ``chromium`` and ``chromium-driver`` and the ``selenium`` package
(``scripts/install.sh dev`` installs them).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium: scripts/install.sh dev")
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from tests.conftest import DIALOGUE_ADMIN_KEY, DIALOGUE_OPERATOR_KEY  # noqa: E402

TIMEOUT = httpx.Timeout(600.0)
SCRIPT = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'


def _chromium() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        pytest.skip("Debian's chromium and chromium-driver: scripts/install.sh dev")
    return browser, driver


@pytest.fixture(scope="module")
def shots() -> Path:
    folder = Path(os.environ.get("WOW_RAY_TEST_ARTIFACTS", "test-artifacts")) / "console"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def browser():
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = _chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1400,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(120)
    yield driver
    driver.quit()


class Customer:
    """One customer's session through the gateway's API, as the business's app calls it."""

    def __init__(self, app, user: str) -> None:
        self.http = httpx.Client(base_url=app.url, headers=app.customer(user), timeout=TIMEOUT)
        response = self.http.post("/v1/sessions", json={})
        assert response.status_code == 201, response.text
        self.sid = response.json()["session_id"]

    def say(self, text: str) -> dict:
        response = self.http.post(f"/v1/sessions/{self.sid}/messages", json={"content": text})
        assert response.status_code == 200, response.text
        return response.json()

    def transcript(self) -> dict:
        return self.http.get(f"/v1/sessions/{self.sid}/transcript").json()


def _wait(driver, css: str, timeout: float = 60):
    return WebDriverWait(driver, timeout).until(
        EC.presence_of_element_located((By.CSS_SELECTOR, css)))


def _until(driver, condition, timeout: float = 30):
    """Wait for a condition on a part of the page that the live stream (SSE) re-renders: an
    element found just before its part is replaced is stale, and is looked up again."""
    return WebDriverWait(driver, timeout, ignored_exceptions=(StaleElementReferenceException,)
                         ).until(condition)


def _login(driver, app) -> str:
    console = f"{app.url}/console"
    driver.get(f"{console}/sessions")
    if "/login" in driver.current_url:
        _wait(driver, "#key").send_keys(DIALOGUE_OPERATOR_KEY)
        driver.find_element(By.ID, "login").click()
    _wait(driver, "#sessions")
    return console


def test_the_console_in_a_browser(dialogue_app, browser, shots):
    denied = Customer(dialogue_app, "U0001")
    denied.say("please cancel order O10001")
    handed = Customer(dialogue_app, "U0001")
    out = handed.say("I want to talk to a real person")
    assert out["status"] == "handed_off", out
    ticket = out["ticket_id"]

    console = f"{dialogue_app.url}/console"
    browser.delete_all_cookies()
    browser.get(f"{console}/sessions")
    assert "/login" in browser.current_url
    browser.save_screenshot(str(shots / "login.png"))
    _login(browser, dialogue_app)
    # the session list, filtered to sessions with a rule denial
    browser.get(f"{console}/sessions?denials=yes")
    _wait(browser, f"a[href$='/sessions/{denied.sid}']")
    browser.save_screenshot(str(shots / "sessions.png"))

    # a session's trace, and the rule denial with its rule ids and the customer-facing reason
    browser.find_element(By.CSS_SELECTOR, f"a[href$='/sessions/{denied.sid}']").click()
    _wait(browser, "#turns .step")
    cancel = next(c for s in denied.transcript()["turns"][0]["steps"] for c in s["tool_calls"]
                  if c["name"] == "cancel_order")
    rule_ids = browser.find_element(By.CSS_SELECTOR, "#denials .rule-ids").text
    assert rule_ids == ", ".join(cancel["decision"]["rule_ids"])
    reason = browser.find_element(By.CSS_SELECTOR, "#denials .customer-reason").text
    assert reason == (cancel["decision"]["customer_reason"] or cancel["decision"]["reason"]).strip()
    agents = [e.text.split(" ")[0] for e in browser.find_elements(By.CSS_SELECTOR, ".step summary")]
    assert "understanding" in agents and "response" in agents
    browser.find_elements(By.CSS_SELECTOR, ".step summary")[0].click()  # open a step's trace
    browser.save_screenshot(str(shots / "session.png"))

    # the handoff queue: take the ticket and reply as a human in the same session
    browser.get(f"{console}/tickets")
    row = _wait(browser, f"tr[data-ticket='{ticket}']")
    assert "open" in row.text
    browser.save_screenshot(str(shots / "tickets.png"))
    row.find_element(By.CSS_SELECTOR, "button.take").click()
    _wait(browser, "#reply-text").send_keys("Hello, this is Ana from the team. I can help.")
    browser.find_element(By.ID, "send-reply").click()
    _wait(browser, "#reply-form")
    _until(browser, lambda d: "Hello, this is Ana" in d.find_element(By.ID, "turns").text)
    # the customer's chat goes on with the human; the page shows it without a reload (SSE)
    answer = handed.say("Thanks Ana, my order O10001 is missing")
    assert answer["status"] == "human" and answer["reply"] == ""
    _until(browser, lambda d: "my order O10001 is missing" in d.find_element(By.ID, "turns").text)
    browser.save_screenshot(str(shots / "takeover.png"))
    turns = handed.transcript()["turns"]
    assert [(t["by"], t["operator"]) for t in turns[-2:]] == [("human", "operator"),
                                                              ("human", None)]
    browser.find_element(By.ID, "hand-back").click()
    _until(browser, lambda d: d.find_element(By.ID, "session-status").text == "active")

    # rules: in force, and an edited file refused with file, line and field
    browser.get(f"{console}/rules")
    assert _wait(browser, "#rules-version").text
    browser.save_screenshot(str(shots / "rules.png"))
    box = browser.find_element(By.ID, "rules-text")
    box.clear()
    box.send_keys("version: 9\nrules:\n  - id: broken\n    title: Broken\n    effect: forbid\n"
                  "    tools: [no_such_tool]\n")
    browser.find_element(By.ID, "validate").click()
    issues = _wait(browser, "#issues").text
    assert "rules.yaml" in issues and "no_such_tool" in issues
    browser.save_screenshot(str(shots / "rules-invalid.png"))

    # models and quality
    browser.get(f"{console}/models")
    assert "handoff" in _wait(browser, "#agents").text
    browser.save_screenshot(str(shots / "models.png"))

    # the customer chat page, its reply streamed
    browser.get(f"{console}/chat")
    _wait(browser, "#start-chat").click()
    _wait(browser, "#message").send_keys("Hi! My order O10337 arrived 20 minutes late.")
    browser.find_element(By.ID, "send").click()
    _until(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#chat .line.agent")) >= 2,
           timeout=300)
    assert "O10337" in browser.find_element(By.ID, "chat").text
    browser.save_screenshot(str(shots / "chat.png"))


def test_a_script_in_a_customer_message_does_not_run(dialogue_app, browser, shots):
    customer = Customer(dialogue_app, "U0002")
    customer.say(f"{SCRIPT} where is my order?")
    console = _login(browser, dialogue_app)
    for path in (f"/sessions/{customer.sid}", "/sessions", f"/chat?session={customer.sid}"):
        browser.get(console + path)
        _wait(browser, "main")
        assert browser.execute_script("return window.__pwned === undefined"), path
        assert not browser.find_elements(By.CSS_SELECTOR, "img[src='x']"), path
        if path != "/sessions":  # the list truncates the message; the pages show it whole
            assert SCRIPT in browser.find_element(By.TAG_NAME, "main").text, path
    browser.get(console + f"/sessions/{customer.sid}")
    browser.save_screenshot(str(shots / "escaped.png"))


def test_an_admin_deploys_edited_rules_and_the_next_turn_decides_with_them(dialogue_app, browser,
                                                                           shots):
    """Through the agents' Serve user_config, from the rules page: the deployment is in the
    history with its text, and the next turn's trace records the new version."""
    console = f"{dialogue_app.url}/console"
    browser.delete_all_cookies()
    browser.get(f"{console}/rules")
    _wait(browser, "#key").send_keys(DIALOGUE_ADMIN_KEY)
    browser.find_element(By.ID, "login").click()
    before = _wait(browser, "#rules-version").text
    box = browser.find_element(By.ID, "rules-text")
    text = box.get_attribute("value")
    edited = text.replace("version:", "version: 4242 #", 1)
    browser.execute_script("arguments[0].value = arguments[1];", box, edited)
    # The deploy answers once every agent reports the new version; beside the whole suite on
    # 2 cores that took longer than the driver's and the client's 120 s (CI, 2026-11-29).
    browser.set_page_load_timeout(400)
    browser.command_executor._client_config.timeout = 420
    try:
        browser.find_element(By.ID, "deploy").click()
        deployed = _wait(browser, "#deployed-version", timeout=400).text
    finally:
        browser.set_page_load_timeout(120)
        browser.command_executor._client_config.timeout = 120
    assert deployed.startswith("4242@") and deployed != before
    assert "Every agent now decides with it" in browser.find_element(By.ID, "deployed").text
    browser.save_screenshot(str(shots / "rules-deployed.png"))
    customer = Customer(dialogue_app, "U0001")
    customer.say("please cancel order O10001")
    assert {t["rules_version"] for t in customer.transcript()["turns"]} == {deployed}
    browser.find_element(By.CSS_SELECTOR, "#rules-deployments a[href*='/rules/deployments/']").click()
    assert "version: 4242 #" in _wait(browser, "#deployed-text").text
    # an operator key cannot deploy, and the admin API refuses an invalid file with its line
    bad = httpx.put(f"{dialogue_app.url}/v1/admin/rules", headers=dialogue_app.admin_headers,
                    json={"text": "version: 9\nrules:\n  - id: x\n    title: X\n"
                          "    effect: forbid\n    tools: [no_such_tool]\n"}, timeout=TIMEOUT)
    assert bad.status_code == 422 and bad.json()["detail"][0]["line"] == 6, bad.text
    restored = httpx.put(f"{dialogue_app.url}/v1/admin/rules", headers=dialogue_app.admin_headers,
                         json={"text": text}, timeout=TIMEOUT)
    assert restored.status_code == 200 and restored.json()["in_force"], restored.text
