"""Student-facing text calls the source material "the glossary card" or "the quoted table".

Students know a seed as a random seed, so "the seed's table", "the seed says" and the like
are banned wherever a student (or a visitor of the site) reads: the markdown of every
notebook, the comments and strings of its code cells, the strings and comments of the course
package, the README and the site's template and generated sentences. Random seeds may still be
called seeds ("random seed", "three seeds", `seed=0`, `torch.manual_seed`, "the seed is set").
Identifiers are not read (a student does not read `SEED_TABLE` as prose). Fast: well under a
second.
"""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

import nbformat
import pytest
from conftest import REPO

# Phrases that use "seed" for the source material. Case-insensitive; "seed" as a whole word.
SOURCE_SEED = re.compile(
    r"\bseed(?:'|’)s\b"  # the seed's table, the seed's summary
    r"|\bseed (?:table|card|text|source|example|examples|program|numbers|says|said|claims"
    r"|quotes|reports|network|accuracy|accuracies|summary|figures?)\b"
    r"|\b(?:the|this|our|its) seed\b(?! (?:is|was|were|are|of (?:the|each|a) run|value|number"
    r"|for the run|fixes|used|\d))"  # "the seed is set before building" is a random seed
    r"|\bas the seed\b|\bin the seed\b|\bfrom the seed\b",
    re.IGNORECASE,
)

# Files not yet reworded on this branch: another branch (the CNN comparison rework) rewrites
# them. Strict xfail: once they are clean this test XPASSes and fails, so the entry must go.
PENDING: set[str] = set()


def _code_text(source: str) -> list[tuple[int, str]]:
    """(line, text) of every comment and string literal in Python source (IPython magics and
    shell lines are dropped first; unparsable code is read whole)."""
    lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO("\n".join(lines) + "\n").readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return list(enumerate(lines, start=1))
    return [(tok.start[0], tok.string) for tok in tokens
            if tok.type in (tokenize.COMMENT, tokenize.STRING)]


def _hits(text: str) -> list[str]:
    found = []
    for match in SOURCE_SEED.finditer(text):
        start, end = max(match.start() - 30, 0), min(match.end() + 30, len(text))
        found.append(" ".join(text[start:end].split()))
    return found


def scan_notebook(path: Path) -> list[str]:
    """Problems in one notebook: 'file, cell N (id), phrase: ...'."""
    problems = []
    nb = nbformat.read(path, as_version=4)
    for index, cell in enumerate(nb.cells):
        where = f"{path.name}, cell {index} ({cell.get('id', 'no id')})"
        if cell.cell_type == "code":
            pieces = [text for _, text in _code_text(cell.source)]
        else:
            pieces = [cell.source]
        problems += [f"{where}: \"{hit}\"" for text in pieces for hit in _hits(text)]
    return problems


def scan_python(path: Path) -> list[str]:
    return [f"{path.name}, line {line}: \"{hit}\""
            for line, text in _code_text(path.read_text()) for hit in _hits(text)]


def scan_text(path: Path) -> list[str]:
    return [f"{path.name}, line {number}: \"{hit}\""
            for number, line in enumerate(path.read_text().splitlines(), start=1)
            for hit in _hits(line)]


def _student_facing() -> list[Path]:
    files = sorted((REPO / "solutions").glob("*.ipynb")) + sorted((REPO / "course").glob("*.ipynb"))
    files += sorted((REPO / "course" / "nonlinearity").glob("*.py"))
    files += [REPO / "README.md"]
    # The site builder and its Sphinx configuration (the landing page and exercise boxes are
    # generated there), templates and styles.
    files += sorted(p for p in (REPO / "autograder" / "site").rglob("*") if p.is_file()
                    and p.suffix in (".py", ".j2", ".html", ".md", ".css", ".txt")
                    and "__pycache__" not in p.parts)
    return files


def scan(path: Path) -> list[str]:
    if path.suffix == ".ipynb":
        return scan_notebook(path)
    if path.suffix == ".py":
        return scan_python(path)
    return scan_text(path)


def _param(path: Path):
    label = str(path.relative_to(REPO))
    if path.name in PENDING:
        return pytest.param(path, id=label, marks=pytest.mark.xfail(
            strict=True, reason="reworded on the CNN branch; drop it from PENDING on merge"))
    return pytest.param(path, id=label)


@pytest.mark.parametrize("path", [_param(p) for p in _student_facing()])
def test_student_facing_text_does_not_call_the_source_a_seed(path):
    problems = scan(path)
    assert not problems, (
        "call the source 'the glossary card' or 'the quoted table', not 'the seed' "
        "(students read 'seed' as a random seed):\n" + "\n".join(problems))


def test_the_scan_covers_the_student_facing_files():
    names = {p.name for p in _student_facing()}
    assert {"01_linear_collapse.ipynb", "README.md", "book.py", "plots.py"} <= names
    assert {"conf.py", "book.css"} <= names, "the site's configuration and style are scanned"
    assert PENDING <= names, "a PENDING entry names a file that no longer exists"


# --- the scanner itself ----------------------------------------------------------------


BANNED = [
    "As the seed's table shows, sigmoid is slow.",
    "The seed says GELU wins.",
    "Our numbers next to the seed table",
    "the seed card quotes 71%",
    "This matches the seed.",
    "compare with the seed example",
    "the Seed’s accuracy",
]
ALLOWED = [
    "Fix the random seed before training.",
    "Three seeds of each run give a range.",
    "torch.manual_seed(SEED) makes it repeatable",
    "make_moons(n=200, seed=0)",
    "the seed is set before building the network",
    "seed-to-seed noise of a few points",
    "The glossary card's table and the quoted table agree.",
]


@pytest.mark.parametrize("text", BANNED)
def test_scanner_catches_source_seed_phrases(text):
    assert _hits(text), text


@pytest.mark.parametrize("text", ALLOWED)
def test_scanner_allows_random_seeds(text):
    assert not _hits(text), text


def test_scanner_names_file_cell_and_phrase_in_notebooks_and_modules(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("Fine: a random seed."),
        nbformat.v4.new_code_cell("torch.manual_seed(0)\nprint('the seed says 71%')  # ok code"),
        nbformat.v4.new_code_cell("SEED_TABLE = {}  # the seed's table, quoted"),
        nbformat.v4.new_code_cell("seed_table = make(seed=3)\nx = 1"),
    ]
    path = tmp_path / "99_planted.ipynb"
    nbformat.write(nb, path)
    problems = scan_notebook(path)
    assert len(problems) == 2, problems
    assert problems[0].startswith("99_planted.ipynb, cell 1 (") and "the seed says" in problems[0]
    assert problems[1].startswith("99_planted.ipynb, cell 2 (") and "seed's table" in problems[1]

    module = tmp_path / "helper.py"
    module.write_text('SEED_TABLE = {"relu": 0.78}\n\n\ndef f(seed=0):\n'
                      '    """Accuracy as in the seed\'s table."""\n    return seed\n')
    (problem,) = scan_python(module)
    assert problem.startswith("helper.py, line 5:") and "seed's table" in problem
