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
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from _book import ROOT, toc_entries, toc_notebooks

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
    """Build both editions as `make book` does (a fresh clone has none)."""
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    for command in ([str(jupyter_book), "build", str(ROOT), "-W", "-n", "--keep-going"],
                    [sys.executable, str(ROOT / "book" / "_tools" / "editions.py"), "build", "zh_CN"]):
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        assert result.returncode == 0, f"the book does not build:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"


#: Every page of both editions: the English one at the root, the Chinese one under zh_CN/.
EDITIONS = {"en": "", "zh_CN": "zh_CN/"}
PAGES = [folder + entry for folder in EDITIONS.values() for entry in toc_entries()]


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
    if not all((HTML / folder / "index.html").exists() for folder in EDITIONS.values()):
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


# The two screens the book is checked on: a laptop, and a phone (390 CSS pixels,
# an iPhone 12 to 15, emulated as a mobile device so the viewport meta tag counts).
LAPTOP = {"width": 1280, "height": 1400, "deviceScaleFactor": 1, "mobile": False}
PHONE = {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True}

# What scrolls sideways on the page now shown: code and output blocks (every
# dropdown opened first), tables wider than their container, and the page itself.
_SIDEWAYS = """
document.querySelectorAll('details').forEach(details => { details.open = true; });
const longest = text => text.split('\\n').reduce((a, b) => (b.length > a.length ? b : a), '');
const blocks = Array.from(document.querySelectorAll('article pre'))
  .filter(pre => pre.scrollWidth > pre.clientWidth + 1)
  .map(pre => { const line = longest(pre.textContent); return `${line.length} characters: ${line.slice(0, 70)}`; });
const tables = Array.from(document.querySelectorAll('article table'))
  .filter(table => table.getBoundingClientRect().width > table.parentElement.clientWidth + 1)
  .map(table => table.rows[0].innerText.replace(/\\s+/g, ' ').slice(0, 70));
return {blocks, tables, page: document.scrollingElement.scrollWidth, viewport: document.documentElement.clientWidth};
"""


def _show(browser, site, entry: str, screen: dict) -> None:
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", screen)
    browser.get(f"{site}/{entry}.html")
    _wait_for_mathjax(browser)


def _sideways(browser, site, entry: str, screen: dict) -> dict:
    """Show the page on the screen, save a screenshot at its first code cell, and
    report what scrolls sideways. A page that does not fit also widens the
    viewport of a phone, which zooms out to show it."""
    _show(browser, site, entry, screen)
    browser.execute_script("const cell = document.querySelector('article div.cell'); if (cell) cell.scrollIntoView();")
    edition = "zh_CN-" if entry.startswith("zh_CN/") else ""
    browser.save_screenshot(str(SCREENSHOTS / f"{edition}{Path(entry).name}-{screen['width']}.png"))
    found = browser.execute_script(_SIDEWAYS)
    found["page fits"] = found["page"] <= found["viewport"] and browser.execute_script(
        "return window.innerWidth"
    ) == screen["width"]
    return found


@pytest.mark.parametrize("entry", PAGES)
def test_page_renders_cleanly(browser, site, entry):
    _show(browser, site, entry, LAPTOP)

    errors = [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == [], f"{entry}: console errors"

    math_nodes = browser.execute_script("return document.querySelectorAll('.math').length")
    rendered = browser.execute_script("return document.querySelectorAll('mjx-container').length")
    assert rendered >= math_nodes, f"{entry}: {math_nodes} formulas, {rendered} rendered by MathJax"
    body = browser.execute_script("return document.querySelector('article, main, body').innerText")
    assert "$$" not in body, f"{entry}: raw $$ left in the text"

    broken = browser.execute_script(
        "return Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)"
    )
    assert broken == [], f"{entry}: images that did not load"
    alts = browser.execute_script("return Array.from(document.querySelectorAll('article img')).map(i => i.alt)")
    unhelpful = [alt for alt in alts if not alt.strip() or re.search(r"\.(png|svg|jpe?g)$|^[0-9a-f]{16,}", alt)]
    assert unhelpful == [], f"{entry}: images whose alt text does not say what it shows"


@pytest.mark.parametrize("entry", PAGES)
def test_nothing_scrolls_sideways_on_a_laptop(browser, site, entry):
    found = _sideways(browser, site, entry, LAPTOP)
    assert not found["blocks"], "code or output blocks that scroll sideways at 1,280 px:\n" + "\n".join(found["blocks"])
    assert not found["tables"], "tables wider than the text column at 1,280 px:\n" + "\n".join(found["tables"])
    assert found["page fits"]


@pytest.mark.parametrize("entry", PAGES)
def test_on_a_phone_code_wraps_and_the_page_stays_put(browser, site, entry):
    """At 390 px, code and output wrap; a wide table may scroll inside its own box."""
    found = _sideways(browser, site, entry, PHONE)
    assert not found["blocks"], "code or output blocks that scroll sideways at 390 px:\n" + "\n".join(found["blocks"])
    assert found["page fits"], "the whole page is wider than 390 px"
    font_sizes = browser.execute_script(
        "return Array.from(document.querySelectorAll('article pre')).map(pre => parseFloat(getComputedStyle(pre).fontSize))"
    )
    assert min(font_sizes, default=12) >= 12, "code smaller than 12 px"


@pytest.mark.parametrize("folder", EDITIONS.values(), ids=list(EDITIONS))
@pytest.mark.parametrize("path", toc_notebooks(), ids=lambda path: path.stem)
def test_chapter_numbers_its_figures_and_exercises(browser, site, path, folder):
    """Chapters are numbered, and "Fig. 3.1" or "Exercise 3.1" (图 3.1, 练习 3.1) start with theirs."""
    _show(browser, site, folder + path.relative_to(ROOT).with_suffix("").as_posix(), LAPTOP)
    chapter = browser.execute_script(
        "const number = document.querySelector('article h1 .section-number'); return number ? number.textContent.trim() : ''"
    )
    assert re.fullmatch(r"\d+\.", chapter), "the chapter has no number"
    captions = browser.execute_script(
        "return Array.from(document.querySelectorAll('article .caption-number')).map(n => n.textContent.trim())"
    )
    assert [caption for caption in captions if not re.fullmatch(rf"\w+\.? {re.escape(chapter)}\d+", caption)] == []


@pytest.mark.parametrize(("folder", "word"), [("", "checkpoint"), ("zh_CN/", "检查点")], ids=list(EDITIONS))
def test_search_finds_checkpoint(browser, site, folder, word):
    """The Chinese edition's search splits Chinese text into words (Sphinx with jieba)."""
    browser.get(f"{site}/{folder}search.html?q={word}")
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 30).until(
        lambda driver: driver.execute_script(
            "return document.querySelectorAll('#search-results ul.search li').length"
        )
    )
    titles = browser.execute_script(
        "return Array.from(document.querySelectorAll('#search-results ul.search li a')).map(a => a.textContent)"
    )
    browser.save_screenshot(str(SCREENSHOTS / f"{folder.replace('/', '-')}search.png"))
    assert len(titles) > 0


@pytest.mark.parametrize("entry", toc_entries())
def test_each_page_links_to_itself_in_the_other_edition_and_back(browser, site, entry):
    from selenium.webdriver.common.by import By

    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", LAPTOP)
    browser.get(f"{site}/{entry}.html")
    for language, folder in (("zh-CN", "zh_CN/"), ("en", "")):
        link = browser.find_element(By.CSS_SELECTOR, "a.nnsave-edition")
        assert link.is_displayed()
        link.click()
        assert browser.current_url == f"{site}/{folder}{entry}.html"
        assert browser.execute_script("return document.documentElement.lang") == language
        heading = browser.execute_script("return document.querySelector('article h1').innerText")
        assert bool(re.search("[\u4e00-\u9fff]", heading)) == (language == "zh-CN"), heading
