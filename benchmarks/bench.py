"""`make bench`: execute every solution notebook, print the time of each and the total, and the CNN table.

    python benchmarks/bench.py [--full] [--timeout SECONDS] [--json PATH] [NOTEBOOK ...]
    python benchmarks/bench.py --sweep [--sweep-workers N] [--store]

Each notebook in solutions/ (or the ones named) runs top to bottom in a fresh kernel with
nbclient, with course/ as the working directory, as a student's would. The CNN comparison table
is read from notebook 8's executed output (the cells tagged `cnn-table` and `cnn-card`), so it is
exactly what that notebook measured. --full sets NONLINEARITY_FULL=1 for the kernels (notebook 8's
full-size experiment). Exit status 1 when a notebook failed to run.

--sweep repeats the small sweep that chose notebook 8's default (QUICK) experiment: every setup
of SWEEP_SETUPS (variant of the generated shapes, initialisation, learning rate, batch size)
trains sigmoid, ReLU and GELU networks on 16x16 images for SWEEP_EPOCHS epochs with three seeds,
on two CPU threads per run. It prints each setup at the most epochs whose nine runs train within
SWEEP_BUDGET_S, and the row chosen by nonlinearity.cnn.choose_setup (the rule is written there).
--sweep-workers N runs N setups at once (each pinned to its own two cores where the machine has
them); --store writes the result to nonlinearity/cnn_sweep.json, which notebook 8 prints.
Serially on a 2-core machine the sweep takes about 15 minutes (`make bench SWEEP=1`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = ROOT / "solutions"
COURSE = ROOT / "course"
TABLE_TAGS = ("cnn-table", "cnn-card")
SWEEP_STORE = COURSE / "nonlinearity" / "cnn_sweep.json"  # = nonlinearity.cnn.SWEEP_FILE

# The sweep: what varies, what stays fixed, and the budget the chosen setup must fit.
SWEEP_SETUPS = [
    {"image_size": 16, "data": data, "init": init, "optimiser": "adam", "lr": 3e-3, "batch_size": batch}
    for batch in (16, 32) for data in ("standard", "easy", "light", "light-easy") for init in ("xavier", "he")
] + [
    {"image_size": 16, "data": "light-easy", "init": init, "optimiser": "adam", "lr": lr, "batch_size": 16}
    for init, lr in (("default", 3e-3), ("xavier", 1e-3), ("xavier", 1e-2), ("he", 1e-2))
]
SETUP_KEYS = ("image_size", "data", "init", "optimiser", "lr", "batch_size")
# The generated shapes (nonlinearity.images.make_shapes): "standard" is its default; "easy" has
# less pixel noise and no clutter strokes; "light" draws every shape brighter than its background.
DIFFICULTY = {"standard": {}, "easy": {"noise": 0.04, "clutter": 0}, "light": {"polarity": "light"},
              "light-easy": {"noise": 0.04, "clutter": 0, "polarity": "light"}}
SWEEP_FIXED = {"n_train": 2000, "n_test": 500, "width": 16, "seeds": (0, 1, 2),
               "activations": ("sigmoid", "relu", "gelu"), "evals_per_epoch": 1, "target": 0.5}
SWEEP_EPOCHS = 16
SWEEP_THREADS = 2
# Training time of the nine runs (3 activations x 3 seeds) on two cores; the rest of notebook 8
# (kernel start, imports, data, checks, figures, the activation timings) needs the other half of
# its 60 s.
SWEEP_BUDGET_S = 30.0


def execute(path: Path, timeout: int):
    """Run one notebook; return (wall seconds, status, executed notebook)."""
    import nbformat
    from nbclient import NotebookClient

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


def tagged_markdown(nb, tag: str) -> list[str]:
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


def _sweep_worker_init(slot_queue) -> None:
    """Pin this worker to its own SWEEP_THREADS cores (where there are enough) and set torch's threads."""
    import torch

    slot = slot_queue.get()
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    mine = cores[slot * SWEEP_THREADS:(slot + 1) * SWEEP_THREADS]
    if len(mine) == SWEEP_THREADS:
        os.sched_setaffinity(0, mine)
    torch.set_num_threads(SWEEP_THREADS)


def sweep_setup(setup: dict) -> dict:
    """Train the nine runs of one setup for SWEEP_EPOCHS epochs; accuracy and seconds per epoch."""
    from nonlinearity import cnn, images

    data = images.shapes_dataset(SWEEP_FIXED["n_train"], SWEEP_FIXED["n_test"], seed=0,
                                 size=setup["image_size"], **DIFFICULTY[setup["data"]])
    settings = {**SWEEP_FIXED, **setup, "epochs": SWEEP_EPOCHS}
    del settings["data"]
    comparison = cnn.compare_activations(data, device="cpu", log=None, **settings)
    runs = [{"activation": r.activation, "seed": r.seed, "test_acc": r.test_acc[1:],
             "epoch_seconds": r.epoch_seconds} for r in comparison.runs]
    return {**setup, "runs": runs}


def compact(result: dict) -> dict:
    """The result with accuracies rounded to 4 and seconds to 3 decimals (the stored copy)."""
    setups = [{**setup, "runs": [{**run, "test_acc": [round(a, 4) for a in run["test_acc"]],
                                  "epoch_seconds": [round(t, 3) for t in run["epoch_seconds"]]}
                                 for run in setup["runs"]]} for setup in result["setups"]]
    return {**result, "setups": setups}


def run_sweep(workers: int = 1) -> dict:
    """Every SWEEP_SETUPS entry, `workers` at a time; the raw result (see nonlinearity.cnn.sweep_rows)."""
    import multiprocessing

    import torch

    started = time.perf_counter()
    if workers <= 1:
        torch.set_num_threads(SWEEP_THREADS)
        results = [sweep_setup(setup) for setup in SWEEP_SETUPS]
    else:
        context = multiprocessing.get_context("spawn")
        slots = context.Queue()
        for slot in range(workers):
            slots.put(slot)
        with context.Pool(workers, initializer=_sweep_worker_init, initargs=(slots,)) as pool:
            results = pool.map(sweep_setup, SWEEP_SETUPS, chunksize=1)
    fixed = {k: list(v) if isinstance(v, tuple) else v for k, v in SWEEP_FIXED.items()}
    return {"fixed": fixed, "epochs": SWEEP_EPOCHS, "threads": SWEEP_THREADS,
            "budget_s": SWEEP_BUDGET_S, "cpus": os.cpu_count(), "workers": workers,
            "torch": torch.__version__, "wall_s": round(time.perf_counter() - started, 1),
            "setups": results}


def sweep_main(workers: int, store: bool, json_path: Path) -> int:
    from nonlinearity import cnn

    print(f"CNN sweep: {len(SWEEP_SETUPS)} setups x 3 activations x 3 seeds, {SWEEP_EPOCHS} epochs, "
          f"{SWEEP_THREADS} threads per run, {workers} at a time", flush=True)
    result = run_sweep(workers)
    chosen = cnn.choose_setup(cnn.sweep_rows(result), result["budget_s"])
    result["chosen"] = None if chosen is None else {
        k: chosen[k] for k in (*SETUP_KEYS, "epochs", "train_s")}
    print(cnn.sweep_markdown(result))
    print(f"\nchosen: {result['chosen']}  (sweep took {result['wall_s']} s)")
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(result))
    if store:
        SWEEP_STORE.write_text(json.dumps(compact(result), separators=(",", ":")))
        print(f"stored in {SWEEP_STORE}")
    return 0 if chosen is not None else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every solutions/*.ipynb")
    parser.add_argument("--full", action="store_true", help="notebook 8's full-size experiment")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell (default 1800)")
    parser.add_argument("--json", type=Path, default=ROOT / "build" / "bench.json",
                        help="where to write the results (default build/bench.json)")
    parser.add_argument("--sweep", action="store_true", help="repeat the sweep that chose notebook 8's setup")
    parser.add_argument("--sweep-workers", type=int, default=1, help="sweep setups run at once (default 1)")
    parser.add_argument("--store", action="store_true", help="write the sweep to nonlinearity/cnn_sweep.json")
    args = parser.parse_args(argv)
    if args.sweep:
        return sweep_main(args.sweep_workers, args.store, args.json.with_name("cnn_sweep.json"))
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
