"""benchmarks/bench.py: times notebooks and prints the CNN table from notebook 8's tagged outputs."""

import importlib.util
import json
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("bench", ROOT / "benchmarks" / "bench.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def _notebook(path, cells):
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def test_bench_times_notebooks_and_prints_the_tagged_table(tmp_path, capsys):
    table = new_code_cell("from IPython.display import Markdown, display\n"
                          "display(Markdown('| activation | accuracy |\\n|---|---|\\n| relu | 1 |'))")
    table.metadata["tags"] = ["cnn-table"]
    good = _notebook(tmp_path / "01_good.ipynb", [new_code_cell("x = 1"), table])
    bad = _notebook(tmp_path / "02_bad.ipynb", [new_code_cell("1 / 0")])
    out = tmp_path / "bench.json"
    status = bench.main([str(good), str(bad), "--json", str(out), "--timeout", "60"])
    printed = capsys.readouterr().out
    assert status == 1  # one notebook failed
    assert "01_good" in printed and "02_bad" in printed and "total" in printed
    assert "ZeroDivisionError" in printed
    assert "| relu | 1 |" in printed
    result = json.loads(out.read_text())
    assert [n["status"] for n in result["notebooks"]] == ["ok", "error in cell 0: ZeroDivisionError"]
    assert result["cnn_tables"] == ["| activation | accuracy |\n|---|---|\n| relu | 1 |"]
