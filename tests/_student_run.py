"""The rules a student notebook run by a student must follow (test_notebooks_execute and the
JupyterLab browser test apply the same ones)."""

from __future__ import annotations


def cell_problem(index: int, cell) -> str | None:
    """What is wrong with one executed code cell of a student notebook, or None.

    Every grade cell errors (a blank exercise earns nothing); a solution stub never errors,
    except a blank check-your-understanding answer (grade_id answer_q..), whose stub raises
    NotImplementedError at top level; any other cell may raise only NotImplementedError (it
    calls an unimplemented kernel)."""
    meta = cell.metadata.get("nbgrader", {})
    errors = [out.ename for out in cell.get("outputs", []) if out.get("output_type") == "error"]
    where = f"cell {index} ({meta.get('grade_id', 'ungraded')})"
    if meta.get("grade"):
        return None if errors else f"{where}: grade cell passes with the exercises blank"
    if meta.get("solution"):
        blank_answer = str(meta.get("grade_id", "")).startswith("answer_q") and all(
            e == "NotImplementedError" for e in errors)
        return f"{where}: stub cell raised {errors[0]}" if errors and not blank_answer else None
    if any(e != "NotImplementedError" for e in errors):
        return f"{where}: raised {', '.join(errors)}, not NotImplementedError"
    return None
