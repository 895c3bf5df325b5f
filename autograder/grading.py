"""Grade a class: submissions in, grades out, on nbgrader's own machinery.

    from autograder.grading import autograde
    summary = autograde(["submissions.zip"], "runs/grades", workers=2)

1. The course: the instructor notebooks are generated from the assignment
   sources and ``solutions/`` (or taken from a ``release --bundle`` zip or an
   nbgrader course folder) and registered in a gradebook by nbgrader
   generate_assignment.
2. The submissions (nbgrader layout, a flat folder or zip of Colab
   downloads) become one checked notebook per student and assignment;
   tampering is reported, unreadable notebooks and unknown assignments get a
   status (``autograder.grading_submissions``).
3. N worker processes, each with its own copy of the course and gradebook,
   run nbgrader autograde and generate_feedback (hidden tests cleared) one
   submission at a time, in kernels with a memory limit, a per-cell time
   limit and hidden course files; a per-notebook limit kills a stuck
   worker (``autograder.grading_pool``).
4. The results go, in a fixed order, into one gradebook: the same for any N.

Output folder: ``grades.csv`` (student, assignment, score, max_score,
status, reason, manual_pending, file), ``gradebook.db`` (nbgrader's),
``feedback/<student>/<assignment>.html`` (no hidden tests),
``autograded/<student>/<assignment>/`` (executed notebooks, for the
teacher: they contain the hidden tests), ``summary.json`` and ``logs/``.
With ``source/``, ``release/`` and ``nbgrader_config.py`` it is also an
nbgrader course folder: ``nbgrader export`` and formgrader (to grade the
written answers by hand) work there. A later run into the same folder adds to
it (late students, re-submissions) and keeps the scores given by hand
(``autograder.grading_outputs``); ``--fresh`` starts it over. The folder must
not overlap the course or the submissions.

What a student's code can and cannot do while it is graded
-----------------------------------------------------------
It runs in an IPython kernel started by ``autograder/grading_kernel.py``:

- its working folder is an empty scratch copy, not the course folder, so
  the notebook with the hidden tests is not next to it;
- with Linux user namespaces (most distributions allow them; ``summary.json``
  says ``isolation: namespaces``), the course with the hidden tests and
  every worker's gradebook, the output folder, the submissions, the other
  kernels' scratch folders, ``solutions/``, ``autograder/`` and the project's
  ``.git`` are covered by empty read-only mounts that the kernel cannot
  remove; its temp folder is a private one (autograde runs on the machine,
  present or future, are out of sight); everything else is read-only; it is
  the first process of its own PID namespace (it sees and signals only its
  own processes, and they end with it) with a read-only /proc, a /dev of its
  own, and no network (it talks to nbgrader over Unix sockets);
- ``import solutions`` / ``import autograder`` fail; the environment is
  reduced to an allowlist, HOME points to the scratch folder, the Hugging Face
  hub is offline;
- its memory is limited (``--memory-limit``, RLIMIT_DATA: host memory, not
  GPU memory), and so is the size of the files it writes; each cell has a
  time limit and the whole notebook another;
- grades are computed by nbgrader in the worker from the executed cells'
  outputs and written into the class gradebook by this process after the
  kernel has ended; scores are clamped to the max scores of the source.

- the test cells are not kept in the kernel's history, the reference code of
  a hidden test lives only inside that test's function, and tracebacks are
  "Plain" (no surrounding lines), so feedback does not quote hidden code.

Not isolated: files elsewhere on the machine (other classes' outputs, say)
that the grader's user may read, the kernel may read too: run the grader as a
separate user, never as root. When user namespaces are unavailable
(``isolation: none``, with a warning), the grader's files can be read and
written with the grader's permissions, and the network is open. Within its own notebook, student code runs
in the same interpreter as the tests: code written on purpose to inspect the
running test (frames, IPython hooks) can see that notebook's hidden tests,
and code written to fool them (e.g. replacing ``torch.allclose``) is not
prevented. The autograded notebooks are kept, so such code is visible to the
teacher.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .cli_messages import invalid_choice, positive_int
from .grading_gradebook import STATUS_HELP, Row, record, write_csv
from .grading_nbgrader import KERNEL_SCRIPT, Limits
from .grading_outputs import OutputError, check_out_dir, clear_outputs, kept_rows, load_previous
from .grading_pool import Job, run_jobs
from .grading_submissions import collect_submissions, safe_extract
from .notebooks import (BUNDLE_CONFIG, CODE_STUB, COURSE_ID, TEXT_STUB, NotebookSourceError, assignment_names,
                        build_course)
from .paths import UsageError  # an option's value the command does not take (exit status 2, with the usage)

PACKAGE_DIRS = ("solutions", "autograder")


class GradingError(RuntimeError):
    """The class cannot be graded at all (bad options, no course); said in Japanese."""


def memory_size(text: str) -> int:
    """'4G', '512M', '0' (no limit) -> bytes; an argparse type (bad text: a usage error)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*", str(text).lower())
    if not m:
        raise argparse.ArgumentTypeError(f"メモリの大きさ {text!r} が読めません (例: 4G, 512M, 0 = 制限なし)")
    return int(float(m[1]) * 1024 ** " kmgt".index(m[2] or " "))


def parse_size(text: str | int | None) -> int:
    """memory_size for the Python API (also None or a number of bytes)."""
    if text is None or isinstance(text, int):
        return text or 0
    try:
        return memory_size(text)
    except argparse.ArgumentTypeError as e:
        raise UsageError(f"--memory-limit: {e}") from None


def check_choices(option: str, values, choices) -> None:
    for value in values or []:
        if value not in choices:
            raise UsageError(invalid_choice(option, value, choices))


def probe_isolation() -> str:
    """'namespaces' when kernels can get private mounts here, else 'none'."""
    try:
        out = subprocess.run([sys.executable, "-I", str(KERNEL_SCRIPT), "--probe"], capture_output=True,
                             text=True, timeout=30)
        return out.stdout.strip() or "none"
    except (OSError, subprocess.TimeoutExpired):
        return "none"


def package_dirs() -> list[str]:
    """Folders of the reference implementation and the grader (hidden from kernels),
    and the git folder of the project that holds them (its history has them too)."""
    import importlib.util

    dirs = []
    for name in PACKAGE_DIRS:
        spec = importlib.util.find_spec(name)
        for location in (spec.submodule_search_locations or []) if spec else []:
            dirs.append(str(Path(location).resolve()))
            git = Path(location).resolve().parent / ".git"
            if git.exists() and str(git) not in dirs:
                dirs.append(str(git))
    return dirs


def folders_to_hide(candidates, keep) -> list[str]:
    """Existing folders (and files: a course bundle) among `candidates`, except
    those holding something the kernel needs (its scratch folder, the Python
    installation)."""
    keep = [Path(k).resolve() for k in keep]
    out = []
    for folder in candidates:
        folder = Path(folder).resolve()
        if not folder.exists() or any(k == folder or folder in k.parents for k in keep):
            continue
        if str(folder) not in out:
            out.append(str(folder))
    return out


# ------------------------------------------------------------------ the course


def find_course_root(folder: Path) -> Path:
    for candidate in (folder, folder / "course", *sorted(p for p in folder.iterdir() if p.is_dir())):
        if (candidate / "source").is_dir() and (candidate / "gradebook.db").is_file():
            return candidate
    raise GradingError(f"{folder}: nbgrader のコース (source/ と gradebook.db) が見つかりません")


def prepare_course(work: Path, names: list[str] | None, course: str | Path | None) -> Path:
    """A course folder in `work` with source/, release/ and gradebook.db."""
    target = work / "course"
    if course is None:
        check_choices("--assignment", names, assignment_names())
        try:
            build_course(target, names or assignment_names())
        except NotebookSourceError as e:
            raise GradingError(str(e)) from None
        return target
    course = Path(course)
    if not course.exists():
        raise GradingError(f"{course}: コース (release --bundle の zip かフォルダ) が見つかりません")
    if course.is_file():
        try:
            skipped = safe_extract(course, work / "bundle")
        except zipfile.BadZipFile:
            raise GradingError(f"{course}: zip として読めません (壊れているか、zip ではありません)。"
                               "release --bundle の zip かコースフォルダを指定してください") from None
        if skipped:
            raise GradingError(f"{course}: 展開できないファイルがあります: "
                               + "; ".join(f"{name} ({why})" for name, why in skipped))
        root = find_course_root(work / "bundle")
    else:
        root = find_course_root(course)
    available = sorted(d.name for d in (root / "source").iterdir() if (d / f"{d.name}.ipynb").is_file())
    check_choices("--assignment", names, available)
    wanted = names or available
    for name in wanted:
        shutil.copytree(root / "source" / name, target / "source" / name)
        if (root / "release" / name).is_dir():
            shutil.copytree(root / "release" / name, target / "release" / name)
    shutil.copyfile(root / "gradebook.db", target / "gradebook.db")
    missing_release = [n for n in wanted if not (target / "release" / n / f"{n}.ipynb").is_file()]
    if missing_release:
        from .notebooks import make_api

        api = make_api(target)
        for name in missing_release:
            result = api.generate_assignment(name, force=True, create=True)
            if not result["success"]:
                raise GradingError(f"{name}: 配布版を作れませんでした\n{result.get('error', '')}")
    return target


def course_notebooks(course: Path, kind: str) -> dict:
    """{assignment: notebook} of the course's release/ or source/ folder."""
    import nbformat

    notebooks = {}
    for folder in sorted((course / "source").iterdir()):
        path = course / kind / folder.name / f"{folder.name}.ipynb"
        if path.is_file():
            notebooks[folder.name] = nbformat.read(path, as_version=4)
    return notebooks


# ------------------------------------------------------------------ grading


@dataclass
class Summary:
    out_dir: Path
    rows: list[Row]
    isolation: str
    workers: int
    seconds: float
    graded: int
    kept: int = 0     # rows of earlier runs in the same output folder, left as they were

    @property
    def csv_path(self) -> Path:
        return self.out_dir / "grades.csv"

    def counts(self) -> dict:
        counts: dict[str, int] = {}
        for row in self.rows:
            counts[row.status] = counts.get(row.status, 0) + 1
        return dict(sorted(counts.items()))


def autograde(submissions, out_dir, assignments: list[str] | None = None, *, workers: int = 2,
              device: str = "cpu", cell_timeout: int = 180, notebook_timeout: int = 600,
              memory_limit: str | int = "4G", course: str | Path | None = None,
              assignment_hint: str | None = None, namespaces: bool = True, keep_work: bool = False,
              progress: bool = False, fresh: bool = False) -> Summary:
    """Grade `submissions` (paths: folders, zips, notebooks) into `out_dir`.

    An earlier run's results in out_dir are kept and added to (see grading_outputs):
    students graded again are replaced, scores given by hand stay. fresh: start over.

    assignments: only these (default: every assignment of the course).
    course: a ``release --bundle`` zip or an nbgrader course folder instead of
    generating the course from the sources and ``solutions/``.
    assignment_hint: the assignment of notebooks that do not say which they are.
    """
    started = time.monotonic()
    if isinstance(submissions, (str, Path)):
        submissions = [submissions]
    if device not in ("cpu", "cuda"):
        raise GradingError(f"--device は cpu か cuda です ({device!r})")
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise GradingError("--device cuda が指定されましたが、この計算機では GPU が使えません")
    if workers < 1:
        raise GradingError("--workers は 1 以上にしてください")
    for option, seconds in (("--cell-timeout", cell_timeout), ("--notebook-timeout", notebook_timeout)):
        if seconds <= 0:
            raise GradingError(f"{option} は 1 秒以上にしてください ({seconds})")
    memory_limit = parse_size(memory_limit)
    out_dir = Path(out_dir).resolve()
    try:
        check_out_dir(out_dir, [Path(p) for p in submissions] + ([Path(course)] if course else []))
    except OutputError as e:
        raise GradingError(str(e)) from None
    work = Path(tempfile.mkdtemp(prefix="bw-grade-"))
    scratch = Path(str(work) + "-scratch")
    scratch.mkdir(mode=0o700)
    try:
        course_dir = prepare_course(work, assignments, course)
        releases = course_notebooks(course_dir, "release")
        check_choices("--default-assignment", [assignment_hint] if assignment_hint else [], sorted(releases))
        if assignment_hint is None and len(releases) == 1:
            assignment_hint = next(iter(releases))  # grading one assignment: that is the default
        found = collect_submissions([Path(p) for p in submissions], set(releases), work / "inbox", releases,
                                    assignment_hint, course_notebooks(course_dir, "source"))
        # The inputs are read: only now is anything in out_dir removed.
        regraded = {(sub.student, sub.assignment or "") for sub in found}
        try:
            previous = None if fresh else load_previous(out_dir, course_dir, COURSE_ID, work / "previous")
        except OutputError as e:
            raise GradingError(str(e)) from None
        clear_outputs(out_dir, regraded if previous else None)
        rows, jobs = [], []
        for i, sub in enumerate(found):
            row = Row(sub.student, sub.assignment or "", sub.status or ("tampered" if sub.tampered else "graded"),
                      reasons=[sub.reason] if sub.reason else [], timestamp=sub.timestamp, file=sub.source)
            row.reasons += sub.notes
            row.in_gradebook = sub.status not in ("unknown_assignment", "duplicate_submission")
            rows.append(row)
            if sub.gradable:
                job_id = f"{i:05d}"
                jobs.append(Job(job_id, sub.student, sub.assignment, str(sub.notebook),
                                str(out_dir / "autograded" / sub.student / sub.assignment / f"{sub.assignment}.ipynb"),
                                str(out_dir / "feedback" / sub.student / f"{sub.assignment}.html"),
                                sub.timestamp))
                row.job_id = job_id
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        # Kernels isolate themselves only where the whole isolation was seen to work: one
        # that fails half-way does not start, and every notebook would fail with it.
        isolation = probe_isolation() if namespaces else "none"
        limits = Limits(cell_timeout=int(cell_timeout), notebook_timeout=int(notebook_timeout),
                        memory_limit=memory_limit, device=device,
                        threads=max(1, cpus // max(1, min(workers, len(jobs) or 1))),
                        hide=folders_to_hide([work, out_dir, *[Path(p) for p in submissions], *package_dirs(),
                                              *([Path(course)] if course else [])],
                                             keep=[scratch, Path(sys.prefix), Path(sys.base_prefix),
                                                   Path(sys.executable).resolve().parent]),
                        namespaces=isolation == "namespaces")
        if namespaces and isolation != "namespaces":
            print("警告: この計算機ではカーネルを隔離できません (ユーザー名前空間が使えない)。"
                  "学生のコードから隠しテストや成績簿が見えます", file=sys.stderr)
        log_dir = out_dir / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)

        total = len(jobs)
        done = [0]

        def report(job, result):
            done[0] += 1
            if progress:
                status = result.get("status") or ("graded" if result.get("ok") else "error")
                print(f"[{done[0]}/{total}] {job.student} {job.assignment}: {status} "
                      f"({result.get('seconds', 0):.1f} 秒)", file=sys.stderr, flush=True)

        results = run_jobs(jobs, workers=workers, work_root=work, scratch_root=scratch, base_course=course_dir,
                           limits=limits, log_dir=log_dir, progress=report)
        seconds = {}
        for row in rows:
            job_id = row.job_id
            if job_id is None:
                continue
            result = results.get(job_id, {"ok": False, "status": "grader_error", "reasons": ["結果がありません"]})
            seconds[f"{row.student}/{row.assignment}"] = result.get("seconds")
            if result.get("ok"):
                row.grades, row.comments = result.get("grades"), result.get("comments")
            if result.get("status"):
                row.status = result["status"]
            row.reasons = [*result.get("reasons", []), *row.reasons]
        shutil.copyfile(previous.gradebook if previous else course_dir / "gradebook.db", out_dir / "gradebook.db")
        kept = kept_rows(previous, regraded)
        record(out_dir / "gradebook.db", COURSE_ID, rows + kept)
        # With source/, release/ and the config, the output folder is an nbgrader course:
        # `nbgrader export` and formgrader (manual grading of the written answers) work there.
        for kind in ("source", "release"):
            shutil.copytree(course_dir / kind, out_dir / kind)
        (out_dir / "nbgrader_config.py").write_text(
            BUNDLE_CONFIG.format(course_id=COURSE_ID, code_stub=CODE_STUB, text_stub=TEXT_STUB), encoding="utf-8")
        write_csv(out_dir / "grades.csv", rows + kept)
        summary = Summary(out_dir, rows, isolation, workers, round(time.monotonic() - started, 1), len(jobs),
                          len(kept))
        (out_dir / "summary.json").write_text(json.dumps({
            "submissions": len(rows), "graded_notebooks": len(jobs), "kept_from_earlier_runs": len(kept),
            "workers": workers, "device": device,
            "isolation": isolation, "seconds": summary.seconds, "statuses": summary.counts(),
            "limits": {"cell_timeout": limits.cell_timeout, "notebook_timeout": limits.notebook_timeout,
                       "memory_limit": limits.memory_limit},
            "seconds_per_notebook": dict(sorted(seconds.items())),
        }, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        return summary
    finally:
        if keep_work:
            print(f"作業フォルダ: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
            shutil.rmtree(scratch, ignore_errors=True)


# ------------------------------------------------------------------ command line


UNSCORED = ("invalid_notebook", "unknown_assignment", "grader_error", "timeout", "kernel_died")
MAX_SHOWN_ROWS = 10  # rows said one by one in the summary; the rest are in grades.csv


def print_unscored(rows: list[Row]) -> None:
    """Which submissions got no (or only part of their) score, and why: the first few."""
    unscored = [row for row in rows if row.status in UNSCORED]
    for row in unscored[:MAX_SHOWN_ROWS]:
        reason = " / ".join(r for r in row.reasons if r)
        print(f"    {row.file or row.student}: {row.status}" + (f" ({reason})" if reason else ""), file=sys.stderr)
    if len(unscored) > MAX_SHOWN_ROWS:
        print(f"    ほか {len(unscored) - MAX_SHOWN_ROWS} 件 (理由は grades.csv の reason 欄)", file=sys.stderr)


def run_autograde(args) -> int:
    try:
        summary = autograde(args.submissions, args.out, args.assignment or None, workers=args.workers,
                            device=args.device, cell_timeout=args.cell_timeout,
                            notebook_timeout=args.notebook_timeout, memory_limit=args.memory_limit,
                            course=args.course, assignment_hint=args.default_assignment,
                            keep_work=args.keep_work, progress=not args.quiet, fresh=args.fresh)
    except UsageError as e:
        args._parser.error(str(e))  # exits with status 2
    except (GradingError, FileNotFoundError) as e:
        print(f"エラー: {e}", file=sys.stderr)
        return 1
    print(f"{len(summary.rows)} 件の提出 ({summary.graded} 件を実行) を {summary.seconds:.0f} 秒で採点しました "
          f"(ワーカー {summary.workers}、隔離: {summary.isolation})", file=sys.stderr)
    for status, n in summary.counts().items():
        print(f"  {status}: {n} 件 ({STATUS_HELP.get(status, '')})", file=sys.stderr)
    print_unscored(summary.rows)
    if summary.kept:
        print(f"  前回までの採点 {summary.kept} 件 (手で付けた点数を含む) はそのまま残しました "
              f"(作り直すなら --fresh)", file=sys.stderr)
    print(f"成績: {summary.csv_path}\nフィードバック: {summary.out_dir / 'feedback'}\n"
          f"成績簿 (nbgrader): {summary.out_dir / 'gradebook.db'}", file=sys.stderr)
    return 0


def register(subparsers) -> argparse.ArgumentParser:
    """Add ``autograde`` to the bert-workshop command."""
    p = subparsers.add_parser(
        "autograde", help="クラスの提出を nbgrader で採点する (成績 CSV・フィードバック HTML・成績簿)",
        description="提出 (nbgrader の submitted/<受講者>/<課題>/ 形式、または Colab から集めた "
                    "<受講者>.ipynb のフォルダや zip) を採点し、grades.csv、受講者ごとのフィードバック "
                    "(隠しテストなし)、nbgrader の gradebook.db を書きます。")
    p.add_argument("submissions", nargs="+", help="提出のフォルダ・zip・ノートブック (複数可)")
    p.add_argument("--out", default="runs/grades", help="出力先フォルダ (既定 runs/grades)")
    p.add_argument("--assignment", action="append", help="この課題だけ採点する (複数指定可)")
    p.add_argument("--default-assignment",
                   help="課題の分からないノートブック (メタデータにもファイル名にもない) をこの課題として採点する")
    p.add_argument("--course", help="release --bundle の zip か nbgrader のコースフォルダ "
                                    "(省略時は課題ソースと solutions から作る)")
    p.add_argument("--workers", type=positive_int, default=2, help="並列に採点するプロセス数 (既定 2)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                   help="ノートブックを実行する装置 (既定 cpu: CUDA を使う提出も CPU の小さな設定で採点)")
    p.add_argument("--cell-timeout", type=positive_int, default=180, help="1 セルの制限時間 (秒、1 以上、既定 180)")
    p.add_argument("--notebook-timeout", type=positive_int, default=600, help="1 ノートブックの制限時間 (秒、1 以上、既定 600)")
    p.add_argument("--memory-limit", type=memory_size, default="4G", help="カーネルのメモリ上限 (既定 4G、0 で制限なし)")
    p.add_argument("--fresh", action="store_true",
                   help="出力先の前回の結果 (手で付けた点数も) を消して作り直す。"
                        "省略時は前回の結果に加え、採点し直した受講者だけを置き換える")
    p.add_argument("--keep-work", action="store_true", help="作業フォルダを消さない (調査用)")
    p.add_argument("--quiet", action="store_true", help="進み具合を表示しない")
    p.set_defaults(func=run_autograde, _parser=p)
    return p


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder.grading")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
