"""The self-study site in Chromium: every page loads cleanly, links and images resolve,
the solution reveal opens, every image has alt text, formulas are typeset by the site's own
MathJax (no raw TeX left, also from file://), and a phone-width viewport does not scroll
sideways. About 30 s once the site is built (see test_book.py for the build)."""

from __future__ import annotations

import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
from _browser import browser, screenshot  # noqa: F401 - fixture
from _site import build_site
from conftest import SOLUTION_NOTEBOOKS

PAGES = ["index"] + [p.stem for p in SOLUTION_NOTEBOOKS]
# A page with math, and formulas on it that must be typeset, not shown as TeX.
MATH_PAGE = "04_sigmoid_tanh"
FORMULAS = [r"$\sigma(x) = 1/(1+e^{-x})$", r"\tanh", r"\sigma"]


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def site_folder(tmp_path_factory):
    return build_site(tmp_path_factory)


@pytest.fixture(scope="module")
def site(site_folder):
    """The built site served over HTTP on a free local port; yields its base URL."""
    folder = site_folder
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=folder))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _open(browser, url, **context_args):  # noqa: F811
    context = browser.new_context(**context_args)
    page = context.new_page()
    problems = []
    page.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text}")
            if msg.type in ("error", "warning") else None)
    page.on("pageerror", lambda err: problems.append(f"page error: {err}"))
    page.on("requestfailed", lambda req: problems.append(f"request failed: {req.url}"))
    page.on("response", lambda resp: problems.append(f"HTTP {resp.status}: {resp.url}")
            if resp.status >= 400 else None)
    page.goto(url, wait_until="load")
    _wait_for_math(page)
    return context, page, problems


def _wait_for_math(page) -> None:
    """Wait until MathJax has typeset the page (its startup ends after the first typeset)."""
    page.wait_for_function("() => window.MathJax && MathJax.Hub", timeout=30_000)
    page.evaluate("() => new Promise(done => MathJax.Hub.Register.StartupHook('End', done))")


@pytest.mark.parametrize("name", PAGES)
def test_page_loads_cleanly_with_working_links_and_images(browser, site, name):  # noqa: F811
    context, page, problems = _open(browser, f"{site}/{name}.html")
    try:
        images = page.eval_on_selector_all(
            "img", "els => els.map(e => [e.getAttribute('src'), e.complete && e.naturalWidth > 0,"
                   " (e.getAttribute('alt') || '').trim()])")
        for src, loaded, alt in images:
            assert loaded, f"{name}: image {src} did not load"
            assert alt, f"{name}: image {src} has no alt text"
        hrefs = page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
        for href in hrefs:
            if href.startswith(site):
                response = page.request.get(href.split("#")[0])
                assert response.ok, f"{name}: broken link {href}"
        assert not problems, f"{name}: " + "; ".join(problems)
    finally:
        context.close()


def test_solution_reveal_opens_on_click(browser, site):  # noqa: F811
    context, page, problems = _open(browser, f"{site}/02_relu.html",
                                    viewport={"width": 1100, "height": 900})
    try:
        details = page.locator("details.solution").first
        code = details.locator(".jp-InputArea").first
        assert not code.is_visible(), "the solution shows before the reveal is opened"
        details.locator("summary").click()
        assert details.evaluate("d => d.open")
        assert code.is_visible()
        code.scroll_into_view_if_needed()
        details.locator("summary").scroll_into_view_if_needed()
        screenshot(page, "site_solution_revealed")
        assert not problems, "; ".join(problems)
    finally:
        context.close()


@pytest.mark.parametrize("name", PAGES)
def test_phone_viewport_has_no_horizontal_overflow(browser, site, name):  # noqa: F811
    context, page, _ = _open(browser, f"{site}/{name}.html",
                             viewport={"width": 390, "height": 844}, device_scale_factor=2,
                             is_mobile=True, has_touch=True)
    try:
        scroll, client = page.evaluate(
            "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        if name == "02_relu":
            screenshot(page, "site_phone_02_relu")
        assert scroll <= client + 1, f"{name}: {scroll}px wide content in a {client}px viewport"
    finally:
        context.close()


@pytest.mark.parametrize("scheme", ["http", "file"])
def test_formulas_are_typeset_offline(browser, site, site_folder, scheme):  # noqa: F811
    url = f"{site}/{MATH_PAGE}.html" if scheme == "http" else (site_folder / f"{MATH_PAGE}.html").as_uri()
    context, page, problems = _open(browser, url, viewport={"width": 1100, "height": 900})
    try:
        typeset, errors, font = page.evaluate(
            "() => [document.querySelectorAll('.MathJax, .MathJax_Display').length,"
            " document.querySelectorAll('.MathJax_Error, merror').length,"
            " MathJax.OutputJax['HTML-CSS'] && MathJax.OutputJax['HTML-CSS'].fontInUse]")
        text = page.evaluate(  # the prose of the markdown cells: not code, not MathJax's scripts
            "() => [...document.querySelectorAll('.jp-RenderedMarkdown')].map(cell => {"
            " const copy = cell.cloneNode(true);"
            " copy.querySelectorAll('code, pre, script, .MathJax, .MathJax_Display,"
            " .MathJax_Preview').forEach(e => e.remove());"
            " return copy.textContent; }).join(' ')")
        assert typeset >= 20, f"{MATH_PAGE}: only {typeset} formulas typeset"
        assert errors == 0, f"{MATH_PAGE}: {errors} formulas failed to typeset"
        assert font == "STIX-Web", f"MathJax could not load its web font (uses {font!r})"
        for formula in FORMULAS:
            assert formula not in text, f"{MATH_PAGE}: raw TeX {formula!r} on the page"
        assert "$" not in text, f"{MATH_PAGE}: a $ delimiter is left in the text"
        src = page.eval_on_selector("script[src*='MathJax.js']", "s => s.getAttribute('src')")
        assert not src.startswith(("http:", "https:", "//", "/")), f"MathJax from {src}"
        page.locator(".MathJax").nth(3).scroll_into_view_if_needed()
        screenshot(page, f"site_math_{scheme}")
        assert not problems, "; ".join(problems)
    finally:
        context.close()
