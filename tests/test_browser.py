"""The built HTML book, opened in headless Chromium the way a reader sees it.

Reads the book built into _build/html: ``make test`` builds it first, and on a
fresh clone the tests build it themselves. Needs Debian's chromium and
chromium-driver; on a reader's machine without them the tests skip and say how
to install them (pytest's summary shows the reason); in CI (CI=true) that is a
failure.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from _book import ROOT, toc_entries

HTML = ROOT / "_build" / "html"
SCREENSHOTS = ROOT / "_build" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
INSTALL_HINT = "install it with: sudo apt-get install chromium chromium-driver"


def _missing_browser() -> str | None:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        return f"Chromium or chromedriver not found; {INSTALL_HINT}"
    return None


def _build_book() -> None:
    """Build the HTML book as `make book` does (a fresh clone has none)."""
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    command = [str(jupyter_book), "build", str(ROOT), "-W", "-n", "--keep-going"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, f"the book does not build:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass

    def do_GET(self):
        # The browser asks for /favicon.ico on its own; the book has none.
        if self.path == "/favicon.ico":
            self.send_response(204)
            self.end_headers()
            return
        super().do_GET()


@pytest.fixture(scope="session")
def book_html() -> Path:
    """The built book; built here if _build/html is missing."""
    problem = _missing_browser()
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser test cannot run in CI: {problem}")
        pytest.skip(problem)
    if not (HTML / "index.html").exists():
        _build_book()
    return HTML


@pytest.fixture(scope="module")
def site(book_html):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(book_html)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def browser(site, tmp_path_factory):
    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager reach the network
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", "--window-size=1280,1400",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


def _wait_for_mathjax(driver) -> None:
    driver.set_script_timeout(30)
    driver.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        const ready = () => window.MathJax && MathJax.startup && MathJax.startup.promise;
        const poll = (tries) => {
          if (ready()) { MathJax.startup.promise.then(() => done(true), () => done(false)); }
          else if (tries > 0 && document.querySelector('.math')) { setTimeout(() => poll(tries - 1), 100); }
          else { done(true); }
        };
        poll(100);
        """
    )


@pytest.mark.parametrize("entry", toc_entries())
def test_page_renders_cleanly(browser, site, entry):
    page = entry.replace("\\", "/")
    browser.get(f"{site}/{page}.html")
    _wait_for_mathjax(browser)
    browser.save_screenshot(str(SCREENSHOTS / f"{Path(page).name}.png"))

    errors = [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == [], f"{page}: console errors"

    math_nodes = browser.execute_script("return document.querySelectorAll('.math').length")
    rendered = browser.execute_script("return document.querySelectorAll('mjx-container').length")
    assert rendered >= math_nodes, f"{page}: {math_nodes} formulas, {rendered} rendered by MathJax"
    body = browser.execute_script("return document.querySelector('article, main, body').innerText")
    assert "$$" not in body, f"{page}: raw $$ left in the text"

    broken = browser.execute_script(
        "return Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)"
    )
    assert broken == [], f"{page}: images that did not load"


def test_search_finds_checkpoint(browser, site):
    browser.get(f"{site}/search.html?q=checkpoint")
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 30).until(
        lambda driver: driver.execute_script(
            "return document.querySelectorAll('#search-results ul.search li').length"
        )
    )
    titles = browser.execute_script(
        "return Array.from(document.querySelectorAll('#search-results ul.search li a')).map(a => a.textContent)"
    )
    browser.save_screenshot(str(SCREENSHOTS / "search.png"))
    assert len(titles) > 0
