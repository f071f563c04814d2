"""`make bench`: execute every solution notebook, print the time of each and the total, and the CNN table.

    python benchmarks/bench.py [--full] [--timeout SECONDS] [--json PATH] [NOTEBOOK ...]

Each notebook in solutions/ (or the ones named) runs top to bottom in a fresh kernel with
nbclient, with course/ as the working directory, as a student's would. The CNN comparison table
is read from notebook 8's executed output (the cells tagged `cnn-table` and `cnn-seed`), so it is
exactly what that notebook measured. --full sets NONLINEARITY_FULL=1 for the kernels (notebook 8's
full-size experiment). Exit status 1 when a notebook failed to run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = ROOT / "solutions"
COURSE = ROOT / "course"
TABLE_TAGS = ("cnn-table", "cnn-seed")


def execute(path: Path, timeout: int) -> tuple[float, str, nbformat.NotebookNode]:
    """Run one notebook; return (wall seconds, status, executed notebook)."""
    nb = nbformat.read(path, as_version=4)
    # The kernel's start-up warning about unencrypted loopback TCP would drown the table.
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(COURSE)}},
                            extra_arguments=["--IPKernelApp.log_level=ERROR"])
    start = time.perf_counter()
    try:
        client.execute()
    except Exception as error:  # a timeout or a dead kernel: report it, go on with the next
        return time.perf_counter() - start, f"failed: {type(error).__name__}", nb
    seconds = time.perf_counter() - start
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                return seconds, f"error in cell {index}: {output.get('ename')}", nb
    return seconds, "ok", nb


def tagged_markdown(nb: nbformat.NotebookNode, tag: str) -> list[str]:
    """The Markdown (or plain text) outputs of the cells carrying `tag`."""
    found = []
    for cell in nb.cells:
        if tag in cell.get("metadata", {}).get("tags", []):
            for output in cell.get("outputs", []):
                data = output.get("data", {})
                text = data.get("text/markdown") or output.get("text")
                if text:
                    found.append(text.strip())
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every solutions/*.ipynb")
    parser.add_argument("--full", action="store_true", help="notebook 8's full-size experiment")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell (default 1800)")
    parser.add_argument("--json", type=Path, default=ROOT / "build" / "bench.json",
                        help="where to write the results (default build/bench.json)")
    args = parser.parse_args(argv)
    if args.full:
        os.environ["NONLINEARITY_FULL"] = "1"
    else:
        os.environ.pop("NONLINEARITY_FULL", None)
    notebooks = args.notebooks or sorted(SOLUTIONS.glob("[0-9][0-9]_*.ipynb"))
    if not notebooks:
        print(f"bench: no notebooks in {SOLUTIONS}", file=sys.stderr)
        return 2

    print(f"Executing {len(notebooks)} solution notebooks (cwd course/, {os.cpu_count()} CPUs, "
          f"{platform.python_implementation()} {platform.python_version()}, "
          f"{'FULL' if args.full else 'quick'} CNN experiment)")
    results, tables, total = [], [], 0.0
    width = max(len(Path(p).stem) for p in notebooks)
    for path in notebooks:
        seconds, status, nb = execute(Path(path), args.timeout)
        total += seconds
        results.append({"notebook": Path(path).stem, "seconds": round(seconds, 2), "status": status})
        print(f"  {Path(path).stem:<{width}}  {seconds:7.1f} s  {status}", flush=True)
        for tag in TABLE_TAGS:
            tables += tagged_markdown(nb, tag)
    print(f"  {'total':<{width}}  {total:7.1f} s")

    print("\nCNN comparison (measured by notebook 8):")
    print("\n\n".join(tables) if tables else "  (no table: notebook 8 was not run or did not finish)")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    summary = {"full": args.full, "notebooks": results, "total_seconds": round(total, 2),
               "cnn_tables": tables}
    args.json.write_text(json.dumps(summary, indent=1))
    print(f"\n(results written to {args.json})")
    return 0 if all(r["status"] == "ok" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
