"""The /demo page in a real browser: headless Chromium (Debian's chromium + chromium-driver) through selenium.

A real uvicorn server runs the API in this process (embedded ONNX models, in-process index and store, the
first 2,000 catalogue items). The test loads the page, types a query, moves the weight sliders, checks that
the order follows the weights, opens an item (keyphrases and their floor), writes an item through the write
panel and finds it, checks that the browser console logged no errors, and saves a screenshot
(``$SHOPRANK_TEST_ARTIFACTS``, default ``var/test-artifacts/demo.png``; ``make demo-screenshot`` copies it
to ``docs/demo.png`` for the README). With an API key set the page has no write panel.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

from service.api.app import create_app
from tests.conftest import ROOT, embedded_settings
from tests.integration.servers import free_port

pytestmark = pytest.mark.slow

ARTIFACTS = Path(os.environ.get("SHOPRANK_TEST_ARTIFACTS", ROOT / "var" / "test-artifacts"))


@contextmanager
def api_server(settings, *, timeout_s: float = 900.0) -> Iterator[str]:
    """The app on a real uvicorn server in a thread; yields its base URL once ``/readyz`` answers 200."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="demo-api", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{url}/readyz", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:  # refused while starting, 503 while loading
                pass
            if time.monotonic() > deadline or not thread.is_alive():
                pytest.fail("the API did not become ready", pytrace=False)
            time.sleep(0.5)
        yield url
    finally:
        server.should_exit = True
        thread.join(30)


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("demo-state")  # index snapshots shared by this module's servers


@pytest.fixture(scope="module")
def browser():
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver_path):
        pytest.fail("chromium and chromedriver are needed: `make system-deps` installs them", pytrace=False)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1400",
                "--disable-gpu"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver_path))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def console_errors(driver) -> list[dict]:
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def rendered(driver, weights: dict | None = None, timeout_s: float = 120) -> list[dict]:
    """The result list once rendered (for ``weights`` when given), as the page's data attributes."""
    def done(d):
        results = d.find_element(By.ID, "results")
        shown = results.get_attribute("data-weights")
        return shown and (weights is None or json.loads(shown) == weights) and results.find_elements(By.TAG_NAME, "li")

    WebDriverWait(driver, timeout_s).until(done)
    return [{"id": li.get_attribute("data-id"), "score": float(li.get_attribute("data-score")),
             "ctr": float(li.get_attribute("data-ctr")), "phase": int(li.get_attribute("data-phase")),
             "filtered": "filtered" in (li.get_attribute("class") or "")}
            for li in driver.find_elements(By.CSS_SELECTOR, "#results li")]


def slide(driver, name: str, key: str) -> None:
    driver.find_element(By.ID, f"w-{name}").send_keys(key)  # HOME → min, END → max (fires input events)


def test_demo_page_searches_reranks_explains_and_writes(model_repo, state_dir, browser) -> None:
    settings = embedded_settings(model_repo=model_repo, state_dir=state_dir, api_key=None)
    with api_server(settings) as url:
        browser.get(f"{url}/demo")
        WebDriverWait(browser, 60).until(lambda d: d.find_element(By.ID, "model").text.startswith("encoder:"))
        assert browser.find_element(By.ID, "write-panel").is_displayed()  # no API key: writes allowed

        Select(browser.find_element(By.ID, "mode")).select_by_value("hybrid")
        query = browser.find_element(By.ID, "query")
        query.send_keys("cordless drill")
        query.send_keys(Keys.ENTER)
        default = settings.profiles["default"].model_dump()
        before = rendered(browser, default)
        assert len(before) >= 10
        assert browser.find_elements(By.CSS_SELECTOR, "#results li .bar") and "P(exact)" in browser.page_source

        slide(browser, "relevance", Keys.HOME)
        slide(browser, "cvr", Keys.HOME)
        slide(browser, "ctr", Keys.END)
        after = rendered(browser, {"relevance": 0.0, "ctr": 1.0, "cvr": 0.0})
        assert sorted(i["id"] for i in after) == sorted(i["id"] for i in before)
        assert [i["id"] for i in after] != [i["id"] for i in before]  # moving the weights moved the list
        # as the weights say: the score is the CTR alone, and within each phase (re-scored first) items go by CTR
        assert all(abs(i["score"] - i["ctr"]) < 1e-6 for i in after)
        phases = [i["phase"] for i in after if not i["filtered"]]
        assert phases == sorted(phases, reverse=True)
        for phase in set(phases):
            ctrs = [i["ctr"] for i in after if i["phase"] == phase and not i["filtered"]]
            assert ctrs == sorted(ctrs, reverse=True)

        browser.find_element(By.CSS_SELECTOR, "#results li").click()  # the item view
        WebDriverWait(browser, 120).until(lambda d: d.find_elements(By.ID, "keyphrases"))
        assert "relevance floor" in browser.find_element(By.ID, "floor").text
        floors = [cell.text for cell in browser.find_elements(By.CSS_SELECTOR, "#keyphrases tr td:nth-child(3)")]
        probs = [cell.text for cell in browser.find_elements(By.CSS_SELECTOR, "#keyphrases tr td:nth-child(2)")]
        assert all(float(p) >= float(f.removeprefix("≥ ")) - 0.005 for p, f in zip(probs, floors))

        title = browser.find_element(By.ID, "write-title")  # prefilled from the item view
        title.clear()
        title.send_keys("Zyxwvut Brushless Cordless Drill")
        browser.find_element(By.ID, "write").click()
        status = browser.find_element(By.ID, "write-status")
        WebDriverWait(browser, 120).until(lambda d: "rank" in status.text or "error" in status.get_attribute("class"))
        assert "finds it at rank" in status.text, status.text
        WebDriverWait(browser, 120, ignored_exceptions=(StaleElementReferenceException,)).until(  # the item view reloads
            lambda d: "Zyxwvut" in d.find_element(By.CSS_SELECTOR, "#item-view h2").text
            and d.find_elements(By.ID, "keyphrases"))

        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        browser.execute_script("window.scrollTo(0, 0)")
        assert browser.save_screenshot(str(ARTIFACTS / "demo.png"))
        assert console_errors(browser) == []


def test_demo_page_with_an_api_key_has_no_write_panel(model_repo, state_dir, browser) -> None:
    settings = embedded_settings(model_repo=model_repo, state_dir=state_dir, api_key="demo-key")
    with api_server(settings) as url:
        browser.get(f"{url}/demo")
        WebDriverWait(browser, 60).until(lambda d: d.find_element(By.ID, "model").text.startswith("encoder:"))
        assert not browser.find_element(By.ID, "write-panel").is_displayed()
        query = browser.find_element(By.ID, "query")
        query.send_keys("angle bracket")
        query.send_keys(Keys.ENTER)
        assert rendered(browser)  # searching needs no key
        assert console_errors(browser) == []
