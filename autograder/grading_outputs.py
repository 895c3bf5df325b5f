"""The output folder of ``autograde`` across runs: nothing an instructor made is lost.

A second run into the same folder (a late student, a re-submission) adds to the
first: the gradebook keeps every earlier submission and every score given by hand
in formgrader; only the submissions graded again are replaced. ``fresh=True``
starts the folder over. Inputs are checked before anything in it is removed.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from .grading_gradebook import Row, gradebook_scores, read_csv

RUN_FILES = ("grades.csv", "gradebook.db", "summary.json", "nbgrader_config.py")
RUN_FOLDERS = ("logs", "source", "release")       # rewritten by every run
STUDENT_FOLDERS = ("feedback", "autograded")      # one entry per student and assignment


class OutputError(RuntimeError):
    """The output folder cannot be used (said in Japanese)."""


def overlaps(a: Path, b: Path) -> bool:
    return a == b or a in b.parents or b in a.parents


def check_out_dir(out_dir: Path, inputs: list[Path]) -> None:
    """The output folder must be apart from the course and the submissions:
    writing grades there would delete the course, or grade last run's output."""
    for path in inputs:
        if overlaps(out_dir, Path(path).resolve()):
            raise OutputError(f"出力先 {out_dir} が {path} と重なっています。"
                              f"提出やコースとは別のフォルダを --out に指定してください")


def gradebook_layout(db_path: Path, course_id: str) -> dict:
    """{assignment: {notebook: {grade cell: max score}}}: what a gradebook grades."""
    import warnings

    from nbgrader.api import Gradebook

    with warnings.catch_warnings(), Gradebook(f"sqlite:///{Path(db_path).resolve()}", course_id) as gb:
        warnings.simplefilter("ignore")
        return {a.name: {nb.name: {cell.name: float(cell.max_score) for cell in nb.grade_cells}
                         for nb in a.notebooks} for a in gb.assignments}


def layout_differences(earlier: dict, course: dict) -> list[str]:
    """What an earlier gradebook grades differently from the course (the course's assignments only)."""
    differences = []
    for name, notebooks in sorted(course.items()):
        if name in earlier and earlier[name] != notebooks:
            differences.append(f"課題 {name} の採点セルか配点")
    return differences


@dataclass
class Previous:
    """An earlier run's results in the output folder, copied aside before it is cleared."""
    gradebook: Path
    rows: list[Row] = field(default_factory=list)
    submissions: set[tuple[str, str]] = field(default_factory=set)  # (student, assignment) in its gradebook


def earlier_rows(out_dir: Path) -> list[Row]:
    """The rows of the earlier run's grades.csv (status, reason, file; scores come from the gradebook)."""
    path = out_dir / "grades.csv"
    if not path.is_file():
        return []
    return [Row(r["student"], r["assignment"], r["status"], reasons=[r["reason"]] if r["reason"] else [],
                file=r["file"], in_gradebook=r["score"] != "", kept=True) for r in read_csv(path)]


def load_previous(out_dir: Path, course_dir: Path, course_id: str, aside: Path) -> Previous | None:
    """The earlier results in out_dir, if any, once checked to be of the same course,
    copied to `aside` with the course's assignments that they lack added."""
    gradebook = out_dir / "gradebook.db"
    if not gradebook.is_file():
        return None
    try:
        earlier = gradebook_layout(gradebook, course_id)
    except Exception as e:  # not a gradebook, or another course's
        raise OutputError(f"{gradebook}: nbgrader の成績簿として読めません ({e})。"
                          f"別の --out を指定するか、--fresh で作り直してください") from None
    course = gradebook_layout(course_dir / "gradebook.db", course_id)
    differences = layout_differences(earlier, course)
    if differences:
        raise OutputError(f"{gradebook} は前回の採点の成績簿ですが、今回のコースと違います "
                          f"({', '.join(differences)})。別の --out を指定するか、--fresh で作り直してください "
                          f"(前回の成績と手で付けた点数は消えます)")
    aside.mkdir(parents=True, exist_ok=True)
    previous = Previous(aside / "gradebook.db", earlier_rows(out_dir), set(gradebook_scores(gradebook, course_id)))
    shutil.copyfile(gradebook, previous.gradebook)
    register_missing_assignments(previous, course_dir, sorted(set(course) - set(earlier)), aside / "register")
    return previous


def clear_outputs(out_dir: Path, regraded: set[tuple[str, str]] | None = None) -> None:
    """Remove what this run writes again. regraded=None: everything (a fresh folder);
    else only these (student, assignment) pairs' feedback and executed notebooks."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in RUN_FILES:
        (out_dir / name).unlink(missing_ok=True)
    for name in RUN_FOLDERS + (STUDENT_FOLDERS if regraded is None else ()):
        shutil.rmtree(out_dir / name, ignore_errors=True)
    for student, assignment in regraded or ():
        (out_dir / "feedback" / student / f"{assignment}.html").unlink(missing_ok=True)
        shutil.rmtree(out_dir / "autograded" / student / assignment, ignore_errors=True)


def kept_rows(previous: Previous | None, regraded: set[tuple[str, str]]) -> list[Row]:
    """The earlier rows of the students and assignments not graded in this run, and a row
    for each earlier gradebook submission that the earlier grades.csv does not list."""
    if previous is None:
        return []
    rows = [row for row in previous.rows if (row.student, row.assignment) not in regraded]
    listed = {(row.student, row.assignment) for row in previous.rows}
    rows += [Row(student, assignment, "graded", reasons=["前回までの成績簿から"], kept=True)
             for student, assignment in sorted(previous.submissions - listed - regraded)]
    return rows


def register_missing_assignments(previous: Previous, course_dir: Path, missing: list[str], work: Path) -> None:
    """Add to the earlier gradebook the course's assignments it lacks (a new assignment
    graded into the same folder), with nbgrader generate_assignment as for the course."""
    from .notebooks import make_api

    if not missing:
        return
    shutil.copytree(course_dir / "source", work / "source")
    shutil.copyfile(previous.gradebook, work / "gradebook.db")
    api = make_api(work)
    for name in missing:
        result = api.generate_assignment(name, force=True, create=True)
        if not result["success"]:
            raise OutputError(f"{name}: 前回の成績簿に課題を加えられませんでした\n{result.get('error', '')}")
    shutil.copyfile(work / "gradebook.db", previous.gradebook)
