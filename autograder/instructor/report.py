"""`python -m autograder report GRADES`: the class report, one offline `report.html`.

Reads what `grade` wrote into GRADES: `grades.csv` and `exercises.csv` (always), `messages.csv`
(student_id, notebook, grade_id, message: why a graded cell lost its points) and `timings.csv`
(student_id, notebook, seconds) when present. Draws, in the course's colour-blind palette and
each figure with alt text: the score distribution per notebook, the points per exercise, the
statuses per notebook, the most common diagnosed mistakes per kernel and the slowest notebooks.
Figures are embedded as PNG data, so the page needs nothing else to open.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import re
import statistics
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

REQUIRED = ("grades.csv", "exercises.csv")


class ReportError(Exception):
    """GRADES is not a folder that `grade` wrote (a one-line message for the user)."""


def _read(path: Path, columns: tuple[str, ...]) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise ReportError(f"{path} has no column {', '.join(missing)}: is it a file `grade` wrote?")
        return list(reader)


@dataclass
class ClassGrades:
    grades: list[dict[str, str]]
    exercises: list[dict[str, str]]
    messages: list[dict[str, str]] = field(default_factory=list)
    timings: list[dict[str, str]] = field(default_factory=list)

    @classmethod
    def load(cls, folder: Path) -> ClassGrades:
        if not folder.is_dir():
            raise ReportError(f"{folder} is not a folder: give the --out folder of `grade`")
        for name in REQUIRED:
            if not (folder / name).is_file():
                raise ReportError(f"{folder / name} is missing: run `python -m autograder grade` first")
        data = cls(_read(folder / "grades.csv", ("student_id", "notebook", "score", "max_score", "status")),
                   _read(folder / "exercises.csv",
                         ("student_id", "notebook", "grade_id", "points", "max_points")))
        if (folder / "messages.csv").is_file():
            data.messages = _read(folder / "messages.csv", ("student_id", "notebook", "grade_id", "message"))
        if (folder / "timings.csv").is_file():
            data.timings = _read(folder / "timings.csv", ("student_id", "notebook", "seconds"))
        return data


# ---------------------------------------------------------------- what the report counts

_BRACKETS = re.compile(r"\([^()]*\)")  # examples and inputs in brackets, innermost first


def exercise_of(grade_id: str) -> str:
    """The kernel or exercise a graded cell checks: test_relu_grad -> relu_grad."""
    return grade_id.removeprefix("test_")


def mistake(message: str) -> str:
    """The mistake in a judge's message in words, its examples left out, so that the same
    misconception counts once per student whatever input showed it.

    Messages read "<what is wrong>: <example> (<input>)"; the example holds an "=" ("relu(-1) =
    -1, expected 0") and the input is in brackets: both are dropped."""
    text, previous = message, None
    while text != previous:
        previous, text = text, _BRACKETS.sub("", text)
    kept = []
    for part in text.split(": "):
        if "=" in part or part.strip().startswith("e.g."):
            break
        kept.append(part.strip())
    return " ".join(": ".join(kept).split()).strip(" :;,.") or message.strip()


@dataclass
class Summary:
    notebooks: list[str]
    scores: dict[str, list[float]]  # notebook -> score fraction of each graded student
    exercises: list[tuple[str, str, float, float, int, int, int]]  # nb, cell, mean, max, full, zero, n
    statuses: dict[str, Counter]  # notebook -> status -> count
    mistakes: dict[str, Counter]  # kernel -> mistake -> students
    slowest: list[tuple[str, str, float]]  # (student, notebook, seconds), slowest first
    students: int


def summarise(data: ClassGrades, slowest: int = 10) -> Summary:
    notebooks = sorted({r["notebook"] for r in data.grades})
    scores, statuses = defaultdict(list), defaultdict(Counter)
    for r in data.grades:
        statuses[r["notebook"]][r["status"]] += 1
        if r["status"] != "missing" and float(r["max_score"]) > 0:
            scores[r["notebook"]].append(float(r["score"]) / float(r["max_score"]))
    cells = defaultdict(list)
    for r in data.exercises:
        cells[(r["notebook"], r["grade_id"])].append((float(r["points"]), float(r["max_points"])))
    exercises = []
    for (nb, cell), pts in sorted(cells.items()):
        top = max(m for _, m in pts)
        exercises.append((nb, cell, statistics.fmean(p for p, _ in pts), top,
                          sum(p >= m for p, m in pts), sum(p == 0 for p, _ in pts), len(pts)))
    mistakes = defaultdict(Counter)
    seen = set()
    for r in data.messages:
        kernel, what = exercise_of(r["grade_id"]), mistake(r["message"])
        if (r["student_id"], kernel, what) not in seen:  # students, not occurrences
            seen.add((r["student_id"], kernel, what))
            mistakes[kernel][what] += 1
    times = sorted(((r["student_id"], r["notebook"], float(r["seconds"])) for r in data.timings),
                   key=lambda t: -t[2])
    return Summary(notebooks, dict(scores), exercises, dict(statuses), dict(mistakes),
                   times[:slowest], len({r["student_id"] for r in data.grades}))


# ---------------------------------------------------------------- figures


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _figures(s: Summary) -> list[tuple[str, str, str]]:
    """(title, alt text, PNG as base64) of each figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nonlinearity.plots import PALETTE, use_course_style

    use_course_style()
    figures = []
    nbs = [nb for nb in s.notebooks if s.scores.get(nb)]
    if nbs:
        fig, ax = plt.subplots(figsize=(7.5, 3.8))
        parts = ax.boxplot([[100 * v for v in s.scores[nb]] for nb in nbs], patch_artist=True,
                           medianprops={"color": PALETTE[6]})
        for i, box in enumerate(parts["boxes"]):
            box.set_facecolor(PALETTE[i % 6])
            box.set_alpha(0.6)
        ax.set_xticks(range(1, len(nbs) + 1), [nb.split("_")[0] for nb in nbs])
        ax.set(title="Score per notebook", xlabel="notebook", ylabel="score (% of the maximum)",
               ylim=(-5, 105))
        medians = ", ".join(f"{nb.split('_')[0]} {100 * statistics.median(s.scores[nb]):.0f}%" for nb in nbs)
        figures.append(("Score distribution per notebook",
                        f"Box plot of each graded student's score as a percentage of the notebook's "
                        f"maximum, one box per notebook. Medians: {medians}.", _png(fig)))
    if s.exercises:
        fig, ax = plt.subplots(figsize=(7.5, 0.28 * len(s.exercises) + 1.2))
        labels = [f"{nb.split('_')[0]} {cell}" for nb, cell, *_ in s.exercises]
        fractions = [100 * mean / top if top else 0 for _, _, mean, top, *_ in s.exercises]
        colours = [PALETTE[s.notebooks.index(nb) % 6] for nb, *_ in s.exercises]
        ax.barh(range(len(labels)), fractions, color=colours)
        ax.set_yticks(range(len(labels)), labels, fontsize=8)
        ax.invert_yaxis()
        ax.set(title="Points per exercise", xlabel="mean points (% of the cell's maximum)",
               ylabel="graded cell", xlim=(0, 100))
        hardest = sorted(zip(fractions, labels, strict=True))[:3]
        figures.append(("Points per exercise",
                        "Horizontal bars: the class's mean points in each graded cell as a percentage "
                        "of its maximum, coloured by notebook. Lowest: "
                        + ", ".join(f"{label} {f:.0f}%" for f, label in hardest) + ".", _png(fig)))
    statuses = sorted({st for c in s.statuses.values() for st in c})
    if statuses:
        fig, ax = plt.subplots(figsize=(7.5, 3.6))
        bottom = [0] * len(s.notebooks)
        for i, st in enumerate(statuses):
            counts = [s.statuses[nb][st] for nb in s.notebooks]
            ax.bar([nb.split("_")[0] for nb in s.notebooks], counts, bottom=bottom, label=st,
                   color=PALETTE[i % len(PALETTE)])
            bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
        ax.set(title="Status of each submitted notebook", xlabel="notebook", ylabel="students")
        ax.legend(ncols=min(4, len(statuses)), loc="lower right")
        total = Counter()
        for c in s.statuses.values():
            total.update(c)
        figures.append(("Statuses", "Stacked bars: per notebook, how many students' notebooks were "
                        "graded with each status. In all: "
                        + ", ".join(f"{n} {st}" for st, n in total.most_common()) + ".", _png(fig)))
    top = Counter({(k, m): n for k, c in s.mistakes.items() for m, n in c.items()}).most_common(10)
    if top:
        fig, ax = plt.subplots(figsize=(7.5, 0.35 * len(top) + 1.2))
        ax.barh(range(len(top)), [n for _, n in top], color=PALETTE[1])
        ax.set_yticks(range(len(top)), [f"{k}: {m[:60]}" for (k, m), _ in top], fontsize=8)
        ax.invert_yaxis()
        ax.set(title="Most common diagnosed mistakes", xlabel="students", ylabel="mistake")
        figures.append(("Most common mistakes", "Horizontal bars: how many students made each of the "
                        "ten most common diagnosed mistakes. Most common: "
                        + "; ".join(f"{k}: {m} ({n})" for (k, m), n in top[:3]) + ".", _png(fig)))
    return figures


# ---------------------------------------------------------------- the page

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 1rem auto; padding: 0 1rem;
       color: #1b1b1b; line-height: 1.45; }
img { max-width: 100%; height: auto; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; font-size: 0.9rem; }
th, td { border-bottom: 1px solid #ccc; padding: 0.2rem 0.6rem; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.wrap { overflow-x: auto; }
"""


def _table(header: list[str], rows: list[list], key: str) -> str:
    head = "".join(f"<th scope='col'>{html.escape(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = "".join(
            f"<td class='num'>{v:g}</td>" if isinstance(v, int | float) else f"<td>{html.escape(str(v))}</td>"
            for v in row)
        body.append(f"<tr>{cells}</tr>")
    return (f"<div class='wrap'><table data-table='{key}'><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table></div>")


def render(s: Summary, figures: list[tuple[str, str, str]]) -> str:
    parts = [f"<h1>Class report</h1><p>{s.students} students, {len(s.notebooks)} notebooks.</p>"]
    for title, alt, png in figures:
        parts.append(f"<figure><img src='data:image/png;base64,{png}' alt='{html.escape(alt, quote=True)}'>"
                     f"<figcaption>{html.escape(title)}</figcaption></figure>")
    parts.append("<h2>Points per exercise</h2>")
    parts.append(_table(["notebook", "graded cell", "mean points", "max points", "full points", "zero",
                         "students"],
                        [[nb, cell, round(mean, 3), top, full, zero, n]
                         for nb, cell, mean, top, full, zero, n in s.exercises], "exercises"))
    parts.append("<h2>Statuses</h2>")
    statuses = sorted({st for c in s.statuses.values() for st in c})
    parts.append(_table(["notebook", *statuses],
                        [[nb, *(s.statuses[nb][st] for st in statuses)] for nb in s.notebooks], "statuses"))
    parts.append("<h2>Most common diagnosed mistakes per kernel</h2>")
    if s.mistakes:
        rows = [[kernel, what, n] for kernel in sorted(s.mistakes)
                for what, n in s.mistakes[kernel].most_common(5)]
        parts.append(_table(["kernel", "mistake", "students"], rows, "mistakes"))
    else:
        parts.append("<p>No messages were recorded (messages.csv is missing).</p>")
    parts.append("<h2>Slowest notebooks</h2>")
    if s.slowest:
        parts.append(_table(["student", "notebook", "seconds"],
                            [[st, nb, round(sec, 1)] for st, nb, sec in s.slowest], "slowest"))
    else:
        parts.append("<p>No timings were recorded (timings.csv is missing).</p>")
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>Class report</title><style>{_STYLE}</style></head><body>"
            + "\n".join(parts) + "</body></html>\n")


def write_report(folder: Path, out: Path | None = None) -> Path:
    """Write `report.html` into `out` (default: the grades folder); return its path."""
    s = summarise(ClassGrades.load(folder))
    page = render(s, _figures(s))
    target = (out or folder) / "report.html"
    tmp = target.with_suffix(".html.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(target)  # never a half-written report
    return target


def main(grades: str, out: str | None = None) -> int:
    start = time.perf_counter()
    try:
        path = write_report(Path(grades), Path(out) if out else None)
    except ReportError as err:
        print(f"report: {err}", file=sys.stderr)
        return 2
    print(f"wrote {path} in {time.perf_counter() - start:.1f} s")
    return 0
