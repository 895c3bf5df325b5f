"""Shared by the exercise and autograder tests: one nbgrader course built per test run,
and small edits that turn notebooks into the robustness cases."""
from __future__ import annotations

import atexit
import copy
import functools
import shutil
import tempfile
from pathlib import Path

import nbformat

from autograder.notebooks import assignment_names, build_course


@functools.lru_cache(maxsize=None)
def built_course_root() -> Path:
    """source/, release/ and gradebook.db for every assignment (built once, removed at exit)."""
    root = Path(tempfile.mkdtemp(prefix="bw-test-course-"))
    atexit.register(shutil.rmtree, root, True)
    build_course(root / "course", assignment_names())
    return root / "course"


def read(course: Path, kind: str, assignment: str):
    return nbformat.read(course / kind / assignment / f"{assignment}.ipynb", as_version=4)


def cell_index(nb, grade_id: str) -> int:
    for i, cell in enumerate(nb.cells):
        if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            return i
    raise KeyError(grade_id)


def with_cell_source(nb, grade_id: str, source: str):
    nb = copy.deepcopy(nb)
    nb.cells[cell_index(nb, grade_id)].source = source
    return nb


def appended_to_cell(nb, grade_id: str, code: str):
    nb = copy.deepcopy(nb)
    cell = nb.cells[cell_index(nb, grade_id)]
    cell.source = cell.source + "\n\n" + code
    return nb


def write(nb, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path
