"""The course as a student uses it: JupyterLab in Chromium.

Starts JupyterLab (a token, a free local port) on a temporary copy of course/, opens
01_linear_collapse.ipynb, runs every cell (the unanswered exercise fails its check), pastes the
exercise's solution into its cell, runs everything again, checks that a widget renders and that
moving its slider redraws the figure, and presses nbgrader's Validate button, which must report
success. Screenshots go to build/screenshots/. About a minute and a half.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
from _browser import browser, screenshot  # noqa: F401 - fixture
from conftest import COURSE, SOLUTIONS, STUDENT_NOTEBOOKS
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from autograder import book

NOTEBOOK = "01_linear_collapse.ipynb"
CURRENT = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook"  # the notebook tab in front
START_TIMEOUT_S = 90
RUN_TIMEOUT_S = 240
VALIDATE_TIMEOUT_S = 240


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """(base URL, token, course copy) of a JupyterLab serving a copy of course/."""
    root = tmp_path_factory.mktemp("lab")
    course = root / "course"
    shutil.copytree(COURSE, course, ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"))
    home = root / "jupyter"
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    env.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
               JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_RUNTIME_DIR=str(home / "runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"))
    port, token = _free_port(), secrets.token_hex(16)
    log = (root / "lab.log").open("w")
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "jupyter"), "lab", "--no-browser", f"--port={port}",
         "--ip=127.0.0.1", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={course}",
         "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
        + (["--allow-root"] if os.geteuid() == 0 else []),  # CI containers run as root
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=course,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2) as resp:
                if resp.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"JupyterLab did not start:\n{(root / 'lab.log').read_text()[-3000:]}")
        time.sleep(0.5)
    yield base, token, course
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def _run_all_and_wait(page):
    counts = page.locator(f"{CURRENT} .jp-InputArea-prompt").all_text_contents()
    for _attempt in range(3):
        page.locator(".lm-MenuBar-item", has_text="Run").first.click()
        page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
        try:  # a kernel still connecting can drop the request: then ask again
            page.wait_for_function(
                "([notebook, before]) => { const now = [...document.querySelectorAll("
                "notebook + ' .jp-InputArea-prompt')].map(p => p.textContent);"
                " return now.some(t => t.includes('*')) || now.join() !== before.join(); }",
                arg=[CURRENT, counts], timeout=20_000, polling=200)
            break
        except PlaywrightTimeout:
            continue
    page.wait_for_function(
        """(notebook) => {
            const prompts = [...document.querySelectorAll(notebook + ' .jp-InputArea-prompt')];
            const busy = prompts.some(p => p.textContent.includes('*'));
            const status = document.querySelector('.jp-Notebook-ExecutionIndicator');
            return !busy && prompts.some(p => /\\d/.test(p.textContent))
                && (!status || !status.getAttribute('data-status')
                    || status.getAttribute('data-status') === 'idle');
        }""", arg=CURRENT, timeout=RUN_TIMEOUT_S * 1000, polling=500)


def _open_notebook(browser, base, token, name):  # noqa: F811
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(f"{base}/lab/tree/{name}?token={token}&reset", wait_until="domcontentloaded")  # one tab
    page.wait_for_selector(f"{CURRENT} .jp-Cell", timeout=START_TIMEOUT_S * 1000)
    page.wait_for_function(
        "() => document.querySelector('.jp-Notebook-ExecutionIndicator')"
        " && document.querySelector('.jp-Notebook-ExecutionIndicator').getAttribute('data-status')"
        " === 'idle'", timeout=START_TIMEOUT_S * 1000)
    no = page.get_by_role("button", name="No", exact=True)  # JupyterLab's "news?" notification
    if no.count():
        no.first.click()
    return context, page, errors


def _shut_down_kernels(page, base, token):
    for session in page.request.get(f"{base}/api/sessions?token={token}").json():
        page.request.delete(f"{base}/api/sessions/{session['id']}?token={token}")


def _solution_source() -> str:
    solved = book.site_source(nbformat.read(SOLUTIONS / NOTEBOOK, as_version=4))
    return next(c.source for c in solved.cells if c.metadata.get("nbgrader", {}).get("solution"))


def test_student_runs_the_notebook_uses_a_widget_and_validates(browser, lab):  # noqa: F811
    base, token, course = lab
    student = nbformat.read(course / NOTEBOOK, as_version=4)
    sol_index = next(i for i, c in enumerate(student.cells)
                     if c.metadata.get("nbgrader", {}).get("solution"))
    context, page, errors = _open_notebook(browser, base, token, NOTEBOOK)
    try:
        # 1. Run everything as handed out: the blank exercise fails its check, nothing else runs.
        _run_all_and_wait(page)
        errors_shown = page.locator(f"{CURRENT} .jp-OutputArea-output", has_text="Traceback")
        assert errors_shown.count() >= 1, "the unanswered exercise did not fail its check"
        assert "NotImplementedError" in errors_shown.first.text_content()

        # 2. Paste the solution into the exercise cell and run everything again.
        cell = page.locator(f"{CURRENT} .jp-Cell").nth(sol_index)
        cell.scroll_into_view_if_needed()
        cell.locator(".cm-content").click()
        page.keyboard.press("Control+a")
        page.keyboard.insert_text(_solution_source())
        page.keyboard.press("Escape")
        assert "raise NotImplementedError" not in cell.locator(".cm-content").text_content()
        _run_all_and_wait(page)
        assert errors_shown.count() == 0, errors_shown.first.text_content()

        # 3. A widget renders, and moving its slider redraws the figure above it.
        slider = page.locator(f"{CURRENT} .widget-slider").first
        slider.wait_for(state="visible", timeout=30_000)
        assert page.locator("text=Loading widget").count() == 0
        output = slider.locator("xpath=ancestor::div[contains(@class,'jp-Cell-outputArea')]")
        image = output.locator("img").first
        before = image.get_attribute("src")
        slider.scroll_into_view_if_needed()
        readout = slider.locator(".widget-readout").first
        value_before = readout.inner_text()
        slider.locator(".noUi-handle").first.focus()
        page.keyboard.press("ArrowRight")
        deadline = time.monotonic() + 60
        while image.get_attribute("src") == before:  # the display update replaces the <img>
            assert time.monotonic() < deadline, "moving the slider did not redraw the figure"
            page.wait_for_timeout(250)
        assert readout.inner_text() != value_before
        image.scroll_into_view_if_needed()
        screenshot(page, "lab_01_live_widget")

        # 4. nbgrader's Validate button passes.
        page.locator(".validate-button").first.click()
        dialog = page.locator(".jp-Dialog")
        dialog.wait_for(state="visible", timeout=VALIDATE_TIMEOUT_S * 1000)
        page.wait_for_function(
            "() => !document.querySelector('.jp-Dialog').innerText.includes('Validating')",
            timeout=VALIDATE_TIMEOUT_S * 1000)
        screenshot(page, "lab_01_validated")
        text = dialog.inner_text()
        assert "Success! Your notebook passes all the tests." in text, text[:2000]
        assert not errors, "; ".join(errors)
    except Exception:
        screenshot(page, "lab_01_failure")
        raise
    finally:
        _shut_down_kernels(page, base, token)
        context.close()


OTHERS = [p.name for p in STUDENT_NOTEBOOKS if p.name != NOTEBOOK]


@pytest.mark.parametrize("name", OTHERS, ids=[n.split(".")[0] for n in OTHERS])
def test_every_student_notebook_runs_up_to_its_first_exercise(browser, lab, name):  # noqa: F811
    """Run All runs every cell until the first unanswered exercise stops it there."""
    base, token, _ = lab
    context, page, errors = _open_notebook(browser, base, token, name)
    try:
        _run_all_and_wait(page)
        tracebacks = page.locator(f"{CURRENT} .jp-OutputArea-output", has_text="Traceback")
        assert tracebacks.count() == 1, f"{name}: {tracebacks.count()} failing cells, expected 1"
        assert "NotImplementedError" in tracebacks.first.text_content(), tracebacks.first.text_content()
        for broken in ("Loading widget", "Error displaying widget"):
            assert page.locator(f"text={broken}").count() == 0, f"{name}: {broken}"
        assert not errors, "; ".join(errors)
    except Exception:
        screenshot(page, f"lab_{name.split('.')[0]}_failure")
        raise
    finally:
        _shut_down_kernels(page, base, token)
        context.close()
