"""A grading worker: ``python -m autograder.grading_worker SETTINGS.json``.

Each worker owns a copy of the nbgrader course (source notebooks and
gradebook), so workers never share a gradebook while grading. It reads one job
per line on stdin, grades it with nbgrader (autograde, then generate_feedback
with the hidden tests cleared), copies the autograded notebook and the
feedback HTML to the output folder and answers one JSON line on its result
channel (the stdout it started with; afterwards its own stdout, which kernels
inherit, goes to the log, so nothing a student prints can forge a result).
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
import traceback
import warnings
from pathlib import Path

from .grading_nbgrader import CELL_TIMEOUT, KERNEL_DIED, NOT_RUN, Limits, grading_config
from .grading_pool import JOB_MARK, kill_marked

MEMORY_HINTS = ("MemoryError", "can't allocate memory", "DefaultCPUAllocator", "Cannot allocate memory",
                "std::bad_alloc", "out of memory")


def cell_label(cell, index: int) -> str:
    grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
    return f"{index + 1} ({grade_id})" if grade_id else str(index + 1)


def run_problems(nb, limits: Limits) -> tuple[str | None, list[str]]:
    """What went wrong while the notebook ran: (status, reasons)."""
    died, timeouts, memory, not_run = [], [], [], 0
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") != "error":
                continue
            ename, evalue = output.get("ename", ""), str(output.get("evalue", ""))
            if ename == KERNEL_DIED:
                died.append(cell_label(cell, index))
            elif ename == NOT_RUN:
                not_run += 1
            elif ename == CELL_TIMEOUT:
                timeouts.append(cell_label(cell, index))
            elif ename != NOT_RUN and any(h in ename or h in evalue for h in MEMORY_HINTS):
                memory.append(cell_label(cell, index))
    reasons, status = [], None
    if died:
        status = status or "kernel_died"
        reasons.append(f"セル {died[0]} の実行中にカーネルが停止しました (クラッシュ・os._exit・メモリ不足など)。"
                       "それより後のセルは実行していません")
    if timeouts:
        status = status or "cell_timeout"
        after = "。カーネルが応答しなくなったので、それより後のセルは実行していません" if not_run and not died else ""
        reasons.append(f"セル {', '.join(timeouts)} が制限時間 ({limits.cell_timeout} 秒) を超えたので中断しました{after}")
    if memory:
        status = status or "memory_limit"
        limit = f" ({limits.memory_limit / 2**30:g} GiB)" if limits.memory_limit else ""
        reasons.append(f"セル {', '.join(memory)} でメモリの上限{limit}に達しました")
    return status, reasons


def failure(log: str, error: str) -> tuple[str, str]:
    text = f"{log}\n{error}"
    if "Kernel died before replying" in text or "Kernel didn't respond" in text:
        return "kernel_died", "カーネルを起動できませんでした (起動直後に停止しました)"
    if "failed to validate" in text or "ValidationError" in text:
        return "invalid_notebook", "nbgrader のメタデータが壊れていて採点できません"
    lines = [line.strip() for line in error.strip().splitlines() if line.strip()]
    detail = next((line for line in reversed(lines) if "Error" in line or "Exception" in line),
                  lines[-1] if lines else "不明なエラー")
    return "grader_error", f"採点中にエラーが起きました: {detail[:300]}"


def read_grades(db_url: str, course_id: str, assignment: str, student: str) -> tuple[dict, dict]:
    from nbgrader.api import Gradebook

    grades, comments = {}, {}
    with Gradebook(db_url, course_id) as gb:
        submission = gb.find_submission(assignment, student)
        for notebook in submission.notebooks:
            for grade in notebook.grades:
                grades[grade.name] = {"auto_score": grade.auto_score, "manual_score": grade.manual_score,
                                      "max_score": grade.max_score, "needs_manual_grade": grade.needs_manual_grade}
            for comment in notebook.comments:
                if comment.auto_comment:
                    comments[comment.name] = comment.auto_comment
    return grades, comments


class Worker:
    def __init__(self, settings: dict):
        self.settings = settings
        self.course = Path(settings["course"])
        self.limits = Limits(**settings["limits"])
        from .notebooks import COURSE_ID, make_api

        self.course_id = COURSE_ID
        self.config = grading_config(self.course, Path(settings["scratch"]), self.limits)
        self.api = make_api(self.course, self.config)
        self.db_url = self.api.coursedir.db_url

    def clear(self, student: str, assignment: str) -> None:
        for folder in ("submitted", "autograded", "feedback"):
            shutil.rmtree(self.course / folder / student / assignment, ignore_errors=True)

    def grade(self, job: dict) -> dict:
        student, assignment = job["student"], job["assignment"]
        started = time.monotonic()
        result = {"id": job["id"], "ok": False, "status": None, "reasons": [], "grades": {}, "comments": {}}
        self.clear(student, assignment)
        target = self.course / "submitted" / student / assignment
        target.mkdir(parents=True)
        shutil.copyfile(job["notebook"], target / f"{assignment}.ipynb")
        if job.get("timestamp"):
            (target / "timestamp.txt").write_text(job["timestamp"], encoding="utf-8")
        mark = f"{job.get('run', '')}:{job['id']};"
        os.environ[JOB_MARK] = mark  # inherited by the kernel: what it leaves behind is found by it
        try:
            graded = self.api.autograde(assignment, student, force=True, create=True)
        finally:
            kill_marked(mark)
        if not graded["success"]:
            status, reason = failure(graded.get("log", ""), graded.get("error", ""))
            result.update(status=status, reasons=[reason])
            print(graded.get("log", ""), graded.get("error", ""), file=sys.stderr)
        else:
            import nbformat

            autograded = self.course / "autograded" / student / assignment / f"{assignment}.ipynb"
            nb = nbformat.read(autograded, as_version=4)
            result["status"], result["reasons"] = run_problems(nb, self.limits)
            result["grades"], result["comments"] = read_grades(self.db_url, self.course_id, assignment, student)
            result["ok"] = True
            self.copy_out(autograded, job["autograded_out"])
            feedback = self.api.generate_feedback(assignment, student, force=True)
            html = self.course / "feedback" / student / assignment / f"{assignment}.html"
            if feedback["success"] and html.exists():
                self.copy_out(html, job["feedback_out"])
            else:
                result["reasons"].append("フィードバックの HTML を作れませんでした")
                print(feedback.get("log", ""), feedback.get("error", ""), file=sys.stderr)
        self.clear(student, assignment)
        result["seconds"] = round(time.monotonic() - started, 2)
        return result

    @staticmethod
    def copy_out(source: Path, destination: str) -> None:
        destination = Path(destination)
        destination.parent.mkdir(parents=True, exist_ok=True)
        tmp = destination.with_name(destination.name + ".tmp")
        shutil.copyfile(source, tmp)
        os.chmod(tmp, 0o644)
        tmp.replace(destination)


def main(argv: list[str]) -> int:
    settings = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    # The result channel is the stdout we were started with; from now on fd 1
    # (inherited by kernels) goes to the log like stderr.
    channel = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    warnings.filterwarnings("ignore")
    worker = Worker(settings)
    channel.write(json.dumps({"ready": True}) + "\n")
    for line in sys.stdin:
        if not line.strip():
            continue
        job = json.loads(line)
        try:
            result = worker.grade(job)
        except Exception:
            result = {"id": job["id"], "ok": False, "status": "grader_error", "grades": {}, "comments": {},
                      "reasons": [f"採点中にエラーが起きました: {traceback.format_exc().strip().splitlines()[-1][:300]}"]}
            traceback.print_exc()
        channel.write(json.dumps(result, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
