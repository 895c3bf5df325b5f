"""Generated classes of submissions, for the tests and the benchmark.

A generated student fills the first k answer cells of the student notebook
with the reference answers (taken from the instructor notebook) and leaves the
rest as released. Each test cell only uses answers above it, so the expected
autograded score is the sum of the points of the test cells above the first
answer left empty.
"""
from __future__ import annotations

import copy
import random
from pathlib import Path

import nbformat

from .notebooks import META_KEY


def nbgrader_meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def answer_indices(nb) -> list[int]:
    """Positions of the autograded answer cells (code solution cells)."""
    return [i for i, c in enumerate(nb.cells)
            if c.cell_type == "code" and nbgrader_meta(c).get("solution") and not nbgrader_meta(c).get("grade")]


def expected_score(nb, filled: int) -> float:
    """Points of the test cells that come before answer number `filled` (0-based)."""
    answers = answer_indices(nb)
    stop = answers[filled] if filled < len(answers) else len(nb.cells)
    return sum(float(nbgrader_meta(c).get("points", 0)) for c in nb.cells[:stop]
               if nbgrader_meta(c).get("grade") and not nbgrader_meta(c).get("solution"))


def prefix_filled(release, source, filled: int):
    """The student notebook with its first `filled` answers taken from the instructor notebook.
    Returns (notebook, expected autograded score)."""
    nb = copy.deepcopy(release)
    answers = {nbgrader_meta(c).get("grade_id"): c.source for c in source.cells if nbgrader_meta(c).get("solution")}
    for i in answer_indices(nb)[:filled]:
        nb.cells[i].source = answers[nbgrader_meta(nb.cells[i]).get("grade_id")]
    return nb, expected_score(nb, filled)


def max_auto_score(nb) -> float:
    return expected_score(nb, len(answer_indices(nb)))


def generate_class(course: Path, out_dir: Path, assignments: list[str], students: int, *,
                   layout: str = "nbgrader", seed: int = 0) -> dict:
    """Write a class of prefix-filled submissions.

    layout "nbgrader": out_dir/submitted/<student>/<assignment>/<assignment>.ipynb;
    layout "flat": out_dir/<student>__<assignment>.ipynb (as downloaded from Colab).
    Returns {(student, assignment): expected autograded score}.
    """
    rng = random.Random(seed)
    course, out_dir = Path(course), Path(out_dir)
    expected = {}
    for assignment in assignments:
        release = nbformat.read(course / "release" / assignment / f"{assignment}.ipynb", as_version=4)
        source = nbformat.read(course / "source" / assignment / f"{assignment}.ipynb", as_version=4)
        n_answers = len(answer_indices(release))
        for s in range(students):
            student = f"s{s:03d}"
            filled = rng.randint(0, n_answers)
            nb, score = prefix_filled(release, source, filled)
            nb.metadata.setdefault(META_KEY, {})["assignment"] = assignment
            if layout == "nbgrader":
                path = out_dir / "submitted" / student / assignment / f"{assignment}.ipynb"
            else:
                path = out_dir / f"{student}__{assignment}.ipynb"
            path.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, str(path))
            expected[(student, assignment)] = score
    return expected
