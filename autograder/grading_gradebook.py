"""The class's results: one nbgrader gradebook and a grades CSV.

Workers grade into their own gradebooks; here the results are written, in a
fixed order (student, assignment), into one gradebook that starts as a copy of
the course's (assignments, notebooks, cells and max scores come from the
source notebooks, never from a worker). A run with one worker and a run with
many therefore give the same gradebook and CSV.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

CSV_COLUMNS = ["student", "assignment", "score", "max_score", "status", "reason", "manual_pending", "file"]

STATUS_HELP = {
    "graded": "採点済み",
    "tampered": "採点済み。テスト・読み取り専用のセルが変更されていたので元に戻して採点",
    "cell_timeout": "採点済み。制限時間を超えたセルは中断 (そのセルより後は実行)",
    "memory_limit": "採点済み。メモリの上限に達したセルはエラー",
    "kernel_died": "カーネルが停止した。それより前のセルの点だけ",
    "timeout": "ノートブック全体の制限時間を超えた。0 点",
    "invalid_notebook": "ノートブックとして読めない。0 点",
    "grader_error": "採点器のエラー。0 点 (ログを確認)",
    "unknown_assignment": "未知の課題。採点せず",
    "duplicate_submission": "同じ受講者・課題の別ファイルを採点した",
}


@dataclass
class Row:
    student: str
    assignment: str
    status: str
    reasons: list[str] = field(default_factory=list)
    grades: dict | None = None       # grade_id -> {auto_score, manual_score, needs_manual_grade}
    comments: dict | None = None
    timestamp: str | None = None
    file: str = ""
    in_gradebook: bool = True        # known assignment, one row per (student, assignment)
    score: float | None = None
    max_score: float | None = None
    manual_pending: float | None = None
    job_id: str | None = None
    kept: bool = False               # an earlier run's row: its grades are left as they are

    def csv_row(self) -> dict:
        def number(x):
            return "" if x is None else f"{x:g}"
        return {"student": self.student, "assignment": self.assignment, "score": number(self.score),
                "max_score": number(self.max_score), "status": self.status,
                "reason": " / ".join(r for r in self.reasons if r), "manual_pending": number(self.manual_pending),
                "file": self.file}


def parse_timestamp(text: str | None):
    """nbgrader's timestamp.txt format -> datetime (None if absent or unreadable)."""
    if not text:
        return None
    from nbgrader.utils import parse_utc

    try:
        return parse_utc(text)
    except Exception:
        return None


def record(db_path: Path, course_id: str, rows: list[Row]) -> None:
    """Write the rows' grades into the gradebook and fill in their scores."""
    import warnings

    from nbgrader.api import Gradebook, MissingEntry

    with warnings.catch_warnings(), Gradebook(f"sqlite:///{Path(db_path).resolve()}", course_id) as gb:
        warnings.simplefilter("ignore")  # nbgrader's own SQLAlchemy warnings
        for row in sorted(rows, key=lambda r: (r.student, r.assignment)):
            try:
                assignment = gb.find_assignment(row.assignment)
            except MissingEntry:
                row.in_gradebook = False
            if not row.in_gradebook:
                continue
            row.max_score = float(assignment.max_score)
            if row.kept:
                try:
                    submission = gb.find_submission(row.assignment, row.student)
                except MissingEntry:
                    row.in_gradebook = False
                    continue
            else:
                submission = write_grades(gb, row)
            score = pending = 0.0
            for notebook in submission.notebooks:
                for grade in notebook.grades:
                    score += float(grade.score or 0.0)
                    if grade.needs_manual_grade:
                        pending += float(grade.max_score)
            row.score, row.manual_pending = score, pending


def write_grades(gb, row: Row):
    """Row's autograded scores into its submission (created if new). A score given by
    hand in an earlier run stays, and asks for review, as nbgrader autograde does."""
    gb.update_or_create_student(row.student)
    submission = gb.update_or_create_submission(row.assignment, row.student,
                                                timestamp=parse_timestamp(row.timestamp))
    grades = row.grades or {}
    comments = row.comments or {}
    reviewed = []
    for notebook in submission.notebooks:
        for grade in notebook.grades:
            found = grades.get(grade.name)
            maximum = float(grade.max_score)
            if found is None:  # not graded (timeout, crash before grading): zero
                grade.auto_score, grade.needs_manual_grade = 0.0, False
            else:
                auto = found.get("auto_score")
                grade.auto_score = None if auto is None else min(max(float(auto), 0.0), maximum)
                grade.needs_manual_grade = bool(found.get("needs_manual_grade"))
            if grade.manual_score is not None:
                grade.needs_manual_grade = True
                reviewed.append(grade.name)
        for comment in notebook.comments:
            comment.auto_comment = comments.get(comment.name)
    gb.db.commit()
    if reviewed:
        row.reasons.append(f"前回手で付けた点数 ({', '.join(reviewed)}) を残しました。"
                           f"採点し直したので見直してください")
    return submission


def write_csv(path: Path, rows: list[Row]) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8-sig") as f:  # BOM: Excel opens Japanese correctly
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for row in sorted(rows, key=lambda r: (r.student, r.assignment, r.file)):
            writer.writerow(row.csv_row())
    tmp.replace(path)


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        return list(csv.DictReader(f))


def gradebook_scores(db_path: Path, course_id: str) -> dict:
    """{(student, assignment): {grade_id: (auto_score, manual_score, needs_manual_grade)}}."""
    from nbgrader.api import Gradebook

    out = {}
    with Gradebook(f"sqlite:///{Path(db_path).resolve()}", course_id) as gb:
        for assignment in gb.assignments:
            for submission in assignment.submissions:
                cells = {}
                for notebook in submission.notebooks:
                    for grade in notebook.grades:
                        cells[grade.name] = (grade.auto_score, grade.manual_score, grade.needs_manual_grade)
                out[(submission.student.id, assignment.name)] = cells
    return out
