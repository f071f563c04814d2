"""The course as a student uses it: JupyterLab in Chromium.

One JupyterLab (a token, a free local port) serves a temporary copy of course/. Each released
student notebook is opened in it and run as a student runs it: Run All, and after each cell
that fails (an unanswered exercise or its check), "Run Selected Cell and All Below" from the
next cell not yet run, until every code cell has run. The notebook is then saved, and the saved
file must show: every code cell executed, errors only where exercises are blank (each check
cell fails, a stub's definition never does, any other cell fails only with
NotImplementedError), and every figure rendered in the page. Where the notebook shows a widget,
it renders and moving its first control redraws the figure above it. For
01_linear_collapse.ipynb the exercise is then filled in from the solution, everything runs
clean, and nbgrader's Validate button reports success.

Screenshots go to build/screenshots/: lab_<notebook>.png for each notebook (its widget after
the redraw, where it has one), lab_01_validated.png, and lab_<notebook>_failure.png when a
test fails. About four minutes on two shared cores, a minute and a half of it notebook 08
training its CNNs.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
from pathlib import Path

import nbformat
import pytest
from _browser import browser, screenshot  # noqa: F401 - fixture
from _jupyter import START_TIMEOUT_S, jupyter_server
from _student_run import cell_problem
from conftest import COURSE, SOLUTIONS, STUDENT_NOTEBOOKS, nb_ids
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from autograder.site import book

NOTEBOOK = "01_linear_collapse.ipynb"  # the one whose exercise is filled in and validated
CURRENT = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook"  # the notebook tab in front
RUN_TIMEOUT_S = 300  # one Run command; notebook 08 trains its CNNs in about 90 s
VALIDATE_TIMEOUT_S = 240
REDRAW_TIMEOUT_S = 60
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """(base URL, token, course copy) of a JupyterLab serving a copy of course/."""
    root = tmp_path_factory.mktemp("lab")
    course = root / "course"
    shutil.copytree(COURSE, course, ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"))
    home = root / "jupyter"
    # The course's quick defaults (no NONLINEARITY_FULL): notebook 08 trains in about 90 s.
    env = {k: v for k, v in os.environ.items() if k not in ("MPLBACKEND", "NONLINEARITY_FULL")}
    env.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
               JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_RUNTIME_DIR=str(home / "runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"))
    with jupyter_server("lab", course, env, root / "lab.log",
                        ("--LabApp.news_url=",
                         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate")) as (
            base, token):
        yield base, token, course


def _prompts(page) -> list[str]:
    return page.locator(f"{CURRENT} .jp-CodeCell .jp-InputArea-prompt").all_text_contents()


def _run_and_wait(page, command: str) -> None:
    """Run menu -> `command`, then wait until no cell is queued or running."""
    before = _prompts(page)
    for _attempt in range(3):
        page.locator(".lm-MenuBar-item", has_text="Run").first.click()
        page.get_by_role("menuitem", name=command, exact=True).click()
        try:  # a kernel still connecting can drop the request: then ask again
            page.wait_for_function(
                "([notebook, before]) => { const now = [...document.querySelectorAll("
                "notebook + ' .jp-CodeCell .jp-InputArea-prompt')].map(p => p.textContent);"
                " return now.some(t => t.includes('*')) || now.join() !== before.join(); }",
                arg=[CURRENT, before], timeout=20_000, polling=200)
            break
        except PlaywrightTimeout:
            continue
    page.wait_for_function(
        """(notebook) => {
            const prompts = [...document.querySelectorAll(notebook + ' .jp-CodeCell .jp-InputArea-prompt')];
            const busy = prompts.some(p => p.textContent.includes('*'));
            const status = document.querySelector('.jp-Notebook-ExecutionIndicator');
            return !busy && prompts.some(p => /\\d/.test(p.textContent))
                && (!status || !status.getAttribute('data-status')
                    || status.getAttribute('data-status') === 'idle');
        }""", arg=CURRENT, timeout=RUN_TIMEOUT_S * 1000, polling=500)


def _run_every_cell(page) -> int:
    """Run All, then carry on below each cell that stopped the run; returns the Run commands used."""
    _run_and_wait(page, "Run All Cells")
    runs = 1
    for _ in range(len(_prompts(page))):
        not_run = [i for i, text in enumerate(_prompts(page)) if not re.search(r"\d", text)]
        if not not_run:
            break
        cell = page.locator(f"{CURRENT} .jp-CodeCell").nth(not_run[0])
        cell.scroll_into_view_if_needed()
        cell.locator(".jp-InputArea-prompt").click()  # selects the cell, in command mode
        _run_and_wait(page, "Run Selected Cell and All Below")
        runs += 1
    return runs


def _save(page, path: Path) -> nbformat.NotebookNode:
    """Save the notebook from JupyterLab (Ctrl+S) and read the file it wrote."""
    before = path.stat().st_mtime_ns
    page.locator(f"{CURRENT} .jp-Cell").first.locator(".jp-InputArea-prompt").first.click()
    page.keyboard.press("Control+s")
    deadline = time.monotonic() + 30
    while path.stat().st_mtime_ns == before:
        assert time.monotonic() < deadline, f"{path.name} was not saved"
        page.wait_for_timeout(200)
    page.wait_for_function(  # the tab's unsaved-changes dot is gone: the write has finished
        "() => !document.querySelector('.jp-mod-current.jp-mod-dirty')", timeout=30_000)
    return nbformat.read(path, as_version=4)


def _check_saved_run(nb: nbformat.NotebookNode, name: str) -> int:
    """The rules of test_notebooks_execute for a student notebook; returns its PNG outputs."""
    problems, pngs = [], 0
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        pngs += sum("image/png" in out.get("data", {}) for out in cell.outputs)
        if not isinstance(cell.execution_count, int):
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id", "ungraded")
            problems.append(f"cell {index} ({grade_id}) did not run")
        elif problem := cell_problem(index, cell):
            problems.append(problem)
    assert not problems, f"{name}:\n" + "\n".join(problems)
    return pngs


def _check_figures_render(page, name: str, pngs: int) -> None:
    assert pngs > 0, f"{name} shows no figure"
    images = page.eval_on_selector_all(
        f"{CURRENT} .jp-OutputArea-output img",
        "imgs => imgs.map(i => i.complete && i.naturalWidth > 0)")
    assert len(images) == pngs, f"{name}: {pngs} figures saved, {len(images)} shown"
    assert all(images), f"{name}: {images.count(False)} figures did not render"
    for broken in ("Loading widget", "Error displaying widget"):
        assert page.locator(f"text={broken}").count() == 0, f"{name}: {broken}"


def _move_widget_and_check_redraw(page, name: str) -> None:
    """A widget renders; moving its first slider (else picking another entry of its first
    menu) redraws the figure displayed above it."""
    sliders = page.locator(f"{CURRENT} .widget-slider")
    control = (sliders if sliders.count() else page.locator(f"{CURRENT} .widget-dropdown")).first
    control.wait_for(state="visible", timeout=30_000)
    output = control.locator("xpath=ancestor::div[contains(@class,'jp-Cell-outputArea')]")
    image = output.locator("img").first
    before = image.get_attribute("src")
    control.scroll_into_view_if_needed()
    if "widget-slider" in (control.get_attribute("class") or ""):
        readout = control.locator(".widget-readout").first
        value_before = readout.inner_text()
        control.locator(".noUi-handle").first.focus()
        page.keyboard.press("ArrowRight")
    else:
        select = control.locator("select")
        value_before = select.input_value()
        select.select_option(index=1)
    deadline = time.monotonic() + REDRAW_TIMEOUT_S
    while image.get_attribute("src") == before:  # the display update replaces the <img>
        messages = output.locator(".widget-output").all_inner_texts()
        assert time.monotonic() < deadline, f"{name}: moving the widget did not redraw: {messages}"
        page.wait_for_timeout(250)
    now = readout.inner_text() if "widget-slider" in (control.get_attribute("class") or "") \
        else control.locator("select").input_value()
    assert now != value_before, f"{name}: the control did not move"
    image.scroll_into_view_if_needed()


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


def _solution_sources() -> list[str]:
    solved = book.site_source(nbformat.read(SOLUTIONS / NOTEBOOK, as_version=4))
    return [c.source for c in solved.cells if c.metadata.get("nbgrader", {}).get("solution")
            and c.cell_type == "code"]


def _fill_in_validate(page) -> None:
    """Paste notebook 01's solutions into its exercise and answer cells, run everything clean,
    press Validate."""
    student = nbformat.read(COURSE / NOTEBOOK, as_version=4)
    indices = [i for i, c in enumerate(student.cells)
               if c.metadata.get("nbgrader", {}).get("solution") and c.cell_type == "code"]
    sources = _solution_sources()
    assert len(indices) == len(sources) >= 2, "notebook 1 has an exercise and a graded answer"
    for index, source in zip(indices, sources, strict=True):
        cell = page.locator(f"{CURRENT} .jp-Cell").nth(index)
        cell.scroll_into_view_if_needed()
        cell.locator(".cm-content").click()
        page.keyboard.press("Control+a")
        page.keyboard.insert_text(source)
        page.keyboard.press("Escape")
        assert "raise NotImplementedError" not in cell.locator(".cm-content").text_content()
    _run_and_wait(page, "Run All Cells")
    assert not re.search(r"\[ \]", "".join(_prompts(page))), "a cell did not run"
    errors_shown = page.locator(f"{CURRENT} .jp-OutputArea-output", has_text="Traceback")
    assert errors_shown.count() == 0, errors_shown.first.text_content()

    page.locator(".validate-button").first.click()
    dialog = page.locator(".jp-Dialog")
    dialog.wait_for(state="visible", timeout=VALIDATE_TIMEOUT_S * 1000)
    page.wait_for_function(
        "() => !document.querySelector('.jp-Dialog').innerText.includes('Validating')",
        timeout=VALIDATE_TIMEOUT_S * 1000)
    screenshot(page, "lab_01_validated")
    text = dialog.inner_text()
    assert "Success! Your notebook passes all the tests." in text, text[:2000]


@pytest.mark.parametrize("path", STUDENT_NOTEBOOKS, ids=nb_ids(STUDENT_NOTEBOOKS))
def test_student_notebook_runs_in_jupyterlab(browser, lab, path):  # noqa: F811
    base, token, course = lab
    name = path.name
    context, page, errors = _open_notebook(browser, base, token, name)
    try:
        _run_every_cell(page)
        saved = _save(page, course / name)
        pngs = _check_saved_run(saved, name)
        _check_figures_render(page, name, pngs)
        if any(WIDGET_VIEW in out.get("data", {}) for cell in saved.cells
               for out in cell.get("outputs", [])):
            _move_widget_and_check_redraw(page, name)
        else:
            page.locator(f"{CURRENT} .jp-OutputArea-output img").last.scroll_into_view_if_needed()
        screenshot(page, f"lab_{path.stem}")
        if name == NOTEBOOK:
            _fill_in_validate(page)
        assert not errors, "; ".join(errors)
    except Exception:
        screenshot(page, f"lab_{path.stem}_failure")
        raise
    finally:
        _shut_down_kernels(page, base, token)
        context.close()
