"""The portal in a real browser (Debian's headless Chromium, driven through its chromedriver): log in
with the token, search the catalogue and click a facet (the counts change), add a custom WebDAV
volume (its password masked), launch JupyterLab from the form, open it and see its file browser
show the chosen volumes, follow its logs, destroy it. A screenshot of each step is kept under
$COLO_TEST_DIR/artifacts/portal/; the test fails if the browser asks for anything outside
127.0.0.1."""
import json
import os
import time
import uuid
from urllib.parse import urlparse

import pytest
import requests
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from conftest import RUN
from platform_up import DAV_AUTH, Platform

SHOTS = os.path.join(RUN, "artifacts", "portal")
# The portal re-renders its tables from the event stream, so an element found a moment ago may be
# gone: every wait here retries a lookup that went stale instead of failing on it.
FLAKY_DOM = (StaleElementReferenceException,)


def waiting(driver, seconds):
    return WebDriverWait(driver, seconds, ignored_exceptions=FLAKY_DOM)


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    p = Platform(tmp_path_factory.mktemp("portal"), users=("alice",))
    repo = os.environ["COLO_REPO"]
    p.cli("catalog", "load", *[os.path.join(repo, "catalogue", f) for f in ("gaia.toml", "xmm-newton.toml")])
    yield p
    p.stop()


@pytest.fixture
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,800",
                "--disable-background-networking", "--disable-component-update", "--no-first-run",
                "--disable-sync", "--disable-default-apps", "--disable-features=MediaRouter,OptimizationHints"]:
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def requested_hosts(driver):
    hosts = set()
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") == "Network.requestWillBeSent":
            url = msg["params"]["request"]["url"]
            if url.startswith(("http://", "https://", "ws://", "wss://")):
                hosts.add(urlparse(url).hostname)
    return hosts


def test_a_newcomer_logs_in_searches_adds_a_volume_and_runs_jupyterlab(platform, browser):
    p, b = platform, browser
    os.makedirs(SHOTS, exist_ok=True)
    wait = waiting(b, 30)
    step = iter(range(1, 100))
    hosts = set()

    def shot(name):
        b.save_screenshot(os.path.join(SHOTS, f"{next(step):02d}-{name}.png"))
        hosts.update(requested_hosts(b))

    def text_of(css):
        return b.find_element(By.CSS_SELECTOR, css).text

    def click(css):
        """Clicks what `css` names once it holds still (a re-rendered table replaces its buttons)."""
        waiting(b, 10).until(lambda d: d.find_element(By.CSS_SELECTOR, css).click() or True)

    b.get(p.base + "/")
    wait.until(EC.visibility_of_element_located((By.ID, "token")))
    assert b.current_url.endswith("/portal/")
    shot("login")
    b.find_element(By.ID, "token").send_keys("colo_not_a_real_token_0000000000000000000000")
    b.find_element(By.CSS_SELECTOR, "#login-form button").click()
    wait.until(lambda d: text_of("#login-error") != "")
    b.find_element(By.ID, "token").clear()
    b.find_element(By.ID, "token").send_keys(p.tokens["alice"])
    b.find_element(By.CSS_SELECTOR, "#login-form button").click()
    wait.until(lambda d: text_of("#who") == "alice")
    cookies = {c["name"]: c for c in b.get_cookies()}
    assert cookies["colo_session"]["httpOnly"] and cookies["colo_session"]["sameSite"] == "Strict"

    # The catalogue: everything, then a facet — the total becomes that facet's count.
    wait.until(lambda d: "result" in text_of("#total"))
    everything = int(text_of("#total").split()[0])
    facet = next(f for f in b.find_elements(By.CSS_SELECTOR, ".facet") if f.get_attribute("data-value") == "datalab-image")
    count = int(facet.find_element(By.CSS_SELECTOR, ".n").text)
    shot("catalogue")
    facet.click()
    wait.until(lambda d: text_of("#total").startswith(f"{count} result"))
    assert count < everything
    assert b.find_element(By.ID, "q").get_attribute("value") == "type:datalab-image"
    titles = [e.text for e in b.find_elements(By.CSS_SELECTOR, "#items .title")]
    assert "JupyterLab" in titles, titles
    shot("facet")

    # My volumes: + add custom (a WebDAV folder of the test server), the password masked.
    b.find_element(By.CSS_SELECTOR, "[data-tab=volumes]").click()
    b.find_element(By.ID, "add-custom").click()
    prefix = f"portal-{uuid.uuid4().hex[:8]}"
    requests.request("MKCOL", f"http://127.0.0.1:18081/rw/{prefix}", auth=DAV_AUTH, timeout=10).raise_for_status()
    form = b.find_element(By.ID, "custom-form")
    for name, value in [("name", "results"), ("url", f"webdav://127.0.0.1:18081/rw/{prefix}"),
                        ("username", "colo"), ("password", DAV_AUTH[1])]:
        form.find_element(By.NAME, name).send_keys(value)
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(lambda d: "results" in text_of("#volume-table"))
    row = next(r for r in b.find_elements(By.CSS_SELECTOR, "#volume-table tbody tr") if r.text.startswith("results"))
    assert "password=*****" in row.text and "read-write" in row.text, row.text
    assert DAV_AUTH[1] not in b.page_source
    shot("volumes")

    # Launch JupyterLab from the form with two volumes, then open it.
    b.find_element(By.CSS_SELECTOR, "[data-tab=labs]").click()
    form = wait.until(EC.visibility_of_element_located((By.ID, "launch-form")))
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#launch-volumes input")) > 0)
    form.find_element(By.NAME, "name").send_keys("first notebook")
    form.find_element(By.CSS_SELECTOR, "select[name=image] option[value=jupyterlab]").click()
    for box in b.find_elements(By.CSS_SELECTOR, "#launch-volumes input"):
        if box.get_attribute("value") in ("imgs", "results"):
            box.click()
    form.find_element(By.NAME, "open").click()  # this test opens it itself
    shot("launch-form")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    try:
        waiting(b, 150).until(lambda d: "RUNNING" in text_of("#lab-table"))
    finally:
        shot("running")
    assert text_of("#launch-error") == "", text_of("#launch-error")
    portal = b.current_window_handle
    click("#lab-table a.open button")
    waiting(b, 10).until(lambda d: len(d.window_handles) == 2)
    b.switch_to.window(next(h for h in b.window_handles if h != portal))

    def listed_names(d):
        names = sorted(e.text for e in d.find_elements(By.CSS_SELECTOR, ".jp-DirListing-itemText"))
        return names if len([n for n in names if n]) >= 2 else None

    try:
        listed = waiting(b, 120).until(listed_names)
    except Exception:
        shot("jupyterlab-not-ready")
        raise AssertionError(f"JupyterLab at {b.current_url}: {b.page_source[:2000]}")
    assert listed == ["imgs", "results"], listed
    shot("jupyterlab")
    b.close()
    b.switch_to.window(portal)

    # Logs, then destroy.
    click("#lab-table .logs")
    wait.until(lambda d: "Jupyter Server" in text_of("#log"))
    shot("logs")
    click("#lab-table .destroy")
    b.switch_to.alert.accept()
    waiting(b, 30).until(lambda d: "first notebook" not in text_of("#lab-table"))
    shot("destroyed")
    assert hosts == {"127.0.0.1"}, f"the browser asked for: {hosts}"
