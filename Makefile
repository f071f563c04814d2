# Every target bootstraps .venv first, so a fresh clone needs only `make lab` or `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SUBMISSIONS ?= submissions
OUT ?= grades
SWEEP_WORKERS ?= 1
# The folder JupyterLab opens: course/ for students, `make lab LAB_DIR=solutions` for the worked solutions.
LAB_DIR ?= course
# Open a browser only where there is a screen to show it on.
BROWSER_FLAG := $(if $(or $(DISPLAY),$(WAYLAND_DISPLAY),$(filter Darwin,$(shell uname))),,--no-browser)
# Jupyter refuses to run as root (containers, CI machines) unless told it may.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)

.PHONY: setup lab test lint release grade bench book
setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

lab: setup
	$(BIN)/jupyter lab --notebook-dir=$(LAB_DIR) $(BROWSER_FLAG) $(ROOT_FLAG)

lint: setup
	$(BIN)/ruff check .

test: lint
	$(BIN)/python -m pytest

release: setup
	$(BIN)/python -m autograder release

grade: setup
	$(BIN)/python -m autograder grade $(SUBMISSIONS) --out $(OUT)

# The self-study site: the executed course as a Sphinx book (MyST-NB, sphinx-book-theme) in build/site/
# (open build/site/index.html). Notebooks are executed once into build/book-cache/; later builds take seconds.
book: setup
	$(BIN)/python -m autograder book

# Runs every solution notebook and prints per-notebook times, the total and the CNN table.
# `make bench FULL=1` runs the full-size experiments instead of the laptop-sized defaults, and
# grades a class of 60 students instead of 6 (against plain serial nbgrader autograde).
# `make bench SWEEP=1` first repeats the sweep that chose notebook 8's default CNN experiment
# (about 15 minutes on two cores; it prints its table and leaves the stored one alone).
bench: setup
	$(if $(SWEEP),$(BIN)/python benchmarks/bench.py --sweep --sweep-workers $(SWEEP_WORKERS))
	$(BIN)/python benchmarks/bench.py $(if $(FULL),--full)
	$(BIN)/python benchmarks/bench_grading.py --students $(if $(FULL),60,6)
