"""Benchmark class grading: the serial nbgrader command line against `autograde --workers N`.

    python bench/autograde.py                   # 40 submissions (8 students × 5 assignments), 2 workers
    python bench/autograde.py --students 2      # a quick smoke run (10 submissions)

A class of generated submissions (each student filled a random number of the
answers with the reference code) is graded twice, from the same course:

1. nbgrader's CLI as a teacher would run it: ``nbgrader autograde <a>`` then
   ``nbgrader generate_feedback <a>`` for each assignment, one notebook at a time;
2. ``autograder.grading.autograde`` with N worker processes (autograde and
   feedback, plus the submission checks and the merged gradebook).

Prints one JSON object: notebooks graded per minute for each (wall clock),
CPU seconds, the load average (the machine may be shared) and whether both
gave the same scores.
"""
from __future__ import annotations

import sys
from pathlib import Path

# Keep bench/ off the import path: a script there named like a standard module would shadow it.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import tempfile
import time

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autograder.grading import autograde  # noqa: E402
from autograder.grading_classgen import generate_class  # noqa: E402
from autograder.grading_gradebook import gradebook_scores, read_csv  # noqa: E402
from autograder.notebooks import BUNDLE_CONFIG, CODE_STUB, COURSE_ID, TEXT_STUB, build_course  # noqa: E402

ASSIGNMENTS = ["01_basics", "02_tokenization", "03_embeddings", "04_attention", "05_residual_layernorm"]


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_cli(course: Path, class_dir: Path, assignments: list[str], cell_timeout: int) -> dict:
    """The serial nbgrader command line, in a copy of the course with the class submitted."""
    root = course.parent / "cli-course"
    shutil.copytree(course, root)
    shutil.copytree(class_dir / "submitted", root / "submitted")
    (root / "nbgrader_config.py").write_text(
        BUNDLE_CONFIG.format(course_id=COURSE_ID, code_stub=CODE_STUB, text_stub=TEXT_STUB)
        .replace("c.Execute.timeout = 300", f"c.Execute.timeout = {cell_timeout}"), encoding="utf-8")
    nbgrader = str(Path(sys.executable).with_name("nbgrader"))
    env = dict(os.environ, PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    times = {"autograde": 0.0, "generate_feedback": 0.0}
    for assignment in assignments:
        for step in ("autograde", "generate_feedback"):
            start = time.monotonic()
            done = subprocess.run([nbgrader, step, assignment, "--force"], cwd=root, env=env,
                                  capture_output=True, text=True)
            times[step] += time.monotonic() - start
            if done.returncode != 0:
                raise SystemExit(f"nbgrader {step} {assignment} failed:\n{done.stderr[-3000:]}")
    return {"root": root, "times": times}


def totals(scores: dict) -> dict:
    return {key: round(sum(v[0] or 0 for v in cells.values()), 3) for key, cells in scores.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=8, help="students per assignment (default 8: 40 submissions)")
    parser.add_argument("--assignments", nargs="+", default=ASSIGNMENTS)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cell-timeout", type=int, default=300)
    parser.add_argument("--skip-cli", action="store_true", help="only time autograde")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bw-bench-") as tmp:
        tmp = Path(tmp)
        course = tmp / "course"
        build_course(course, args.assignments)
        expected = generate_class(course, tmp / "class", args.assignments, args.students, seed=args.seed)
        n = len(expected)
        load_before = os.getloadavg()
        result = {"submissions": n, "assignments": args.assignments, "workers": args.workers,
                  "cpus": os.cpu_count(), "python": platform.python_version()}

        cpu0, wall0 = children_cpu() + own_cpu(), time.monotonic()
        summary = autograde([tmp / "class"], tmp / "out", args.assignments, course=course, workers=args.workers,
                            cell_timeout=args.cell_timeout, notebook_timeout=10 * args.cell_timeout)
        ours_wall = time.monotonic() - wall0
        ours_cpu = children_cpu() + own_cpu() - cpu0
        ours = totals(gradebook_scores(tmp / "out" / "gradebook.db", COURSE_ID))
        statuses = summary.counts()
        result["ours"] = {"wall_s": round(ours_wall, 1), "cpu_s": round(ours_cpu, 1),
                          "notebooks_per_minute": round(60 * n / ours_wall, 2), "statuses": statuses,
                          "isolation": summary.isolation}
        result["expected_scores_match"] = all(
            abs(ours[(s, a)] - score) < 1e-9 for (s, a), score in expected.items())
        wrong = [r for r in read_csv(tmp / "out" / "grades.csv") if r["status"] != "graded"]
        result["ours"]["not_graded"] = len(wrong)

        if not args.skip_cli:
            cpu0, wall0 = children_cpu() + own_cpu(), time.monotonic()
            cli = run_cli(course, tmp / "class", args.assignments, args.cell_timeout)
            cli_wall = time.monotonic() - wall0
            cli_cpu = children_cpu() + own_cpu() - cpu0
            theirs = totals(gradebook_scores(cli["root"] / "gradebook.db", COURSE_ID))
            result["nbgrader_cli_serial"] = {
                "wall_s": round(cli_wall, 1), "cpu_s": round(cli_cpu, 1),
                "autograde_s": round(cli["times"]["autograde"], 1),
                "generate_feedback_s": round(cli["times"]["generate_feedback"], 1),
                "notebooks_per_minute": round(60 * n / cli_wall, 2)}
            result["same_scores_as_cli"] = theirs == ours
            result["speedup"] = round(cli_wall / ours_wall, 2)
        result["load_average"] = {"before": [round(x, 2) for x in load_before],
                                  "after": [round(x, 2) for x in os.getloadavg()]}
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
