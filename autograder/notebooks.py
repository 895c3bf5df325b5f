"""The exercise notebooks: assignment sources -> instructor notebooks -> student notebooks.

One source of truth: the solution code lives only in ``solutions/`` (tested
Python). An assignment source ``autograder/assignments/NN_name.md`` (jupytext
MyST markdown) holds the Japanese prose, the tests and *directives* that name
reference code instead of copying it. Directives are the first line(s) of a
code cell:

``# given: solutions.layers.LayerNorm, solutions.layers.FeedForward -- 見出し``
    Read-only code: the named references are pasted (relative imports
    dropped), followed by the rest of the cell. ``# given`` alone locks the
    cell's own code. Later assignments receive earlier answers this way, so
    they never import ``solutions``.
``# solution: solutions.attention.scaled_dot_product_attention``
``# solution: solutions.attention.MultiHeadAttention [split_heads, forward]``
    An answer cell: the reference is pasted with ``### BEGIN/END SOLUTION``
    around the body (of the named methods for a class); signature and
    docstring stay visible to the student.
``# tests: sdpa points=3``
    An autograded test cell (locked). Visible tests first, then a
    ``### BEGIN HIDDEN TESTS`` ... ``### END HIDDEN TESTS`` region in which a
    line ``# reference: a.b.c, a.b.d`` pastes the references under private
    names (``_ref_c``). The references and the hidden checks are put inside a
    function (so the references are no globals a student's code could call),
    whose errors surface as one AssertionError without a traceback, so
    feedback never quotes hidden code.

A markdown cell with metadata ``+++ {"written": "why_sqrt_dk", "points": 2}``
is a manually graded written answer; its text is the model answer.

``build_instructor_notebook`` expands a source; ``build_course`` writes the
instructor notebooks into an nbgrader course (``source/``) and runs nbgrader's
generate_assignment (gradebook + ``release/``); ``release`` copies the student
notebooks to ``exercises/``. Everything is deterministic, so a test can
regenerate and compare with what is committed.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from .exercise_refs import (HIDDEN_PREFIX, SOLUTION_BEGIN, SOLUTION_END, DirectiveError, defined_names,
                            hidden_reference, reference_code, with_solution_markers)

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENTS_DIR = Path(__file__).resolve().parent / "assignments"
EXERCISES_DIR = ROOT / "exercises"
COURSE_ID = "bert-workshop"
NAME_PATTERN = re.compile(r"^\d\d_[a-z0-9_]+$")

HIDDEN_BEGIN = "### BEGIN HIDDEN TESTS"
HIDDEN_END = "### END HIDDEN TESTS"
CODE_STUB = "# ここに答えを書いてください\nraise NotImplementedError()"
TEXT_STUB = "ここに答えを書いてください。"
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
# Notebook metadata that identifies the assignment (kept in student notebooks,
# read back by the autograder to recognise a notebook downloaded from Colab).
META_KEY = "bert_workshop"

GIVEN = re.compile(r"^#\s*given(?::\s*(?P<refs>.*?))?(?:\s+--\s+(?P<title>.+))?\s*$")
SOLUTION = re.compile(r"^#\s*solution:\s*(?P<ref>[\w.]+)\s*(?:\[(?P<methods>[^\]]*)\])?\s*$")
TESTS = re.compile(r"^#\s*tests:\s*(?P<id>[\w-]+)\s+points=(?P<points>\d+(?:\.\d+)?)\s*$")
REFERENCE = re.compile(r"^(?P<indent>\s*)#\s*reference:\s*(?P<refs>.+?)\s*$")
GRADE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class NotebookSourceError(ValueError):
    """An assignment source that cannot be turned into a notebook; says where."""


@dataclass
class CellPlan:
    """What the generator made of one cell (for reports and tests)."""

    kind: str  # markdown, free, given, solution, tests, written
    grade_id: str | None = None
    points: float = 0.0
    refs: list[str] = field(default_factory=list)


# ------------------------------------------------------------------ sources


def assignment_names(directory: Path = ASSIGNMENTS_DIR) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.md") if NAME_PATTERN.match(p.stem))


def source_path(name: str, directory: Path = ASSIGNMENTS_DIR) -> Path:
    path = directory / f"{name}.md"
    if not path.is_file():
        known = ", ".join(assignment_names(directory)) or "なし"
        raise NotebookSourceError(f"課題 {name!r} のソース {path} がありません (あるもの: {known})")
    return path


def split_refs(text: str | None) -> list[str]:
    return [r.strip() for r in (text or "").split(",") if r.strip()]


def directive_lines(lines: list[str], pattern: re.Pattern) -> tuple[list[re.Match], list[str]]:
    """The leading lines matching `pattern`, and the rest of the cell."""
    matches = []
    while lines and (m := pattern.match(lines[0])):
        matches.append(m)
        lines = lines[1:]
    return matches, lines


def strip_blank_edges(lines: list[str]) -> list[str]:
    while lines and not lines[0].strip():
        lines = lines[1:]
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    return lines


def nbgrader_metadata(grade_id: str, *, grade=False, solution=False, locked=False, points=None) -> dict:
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3,
            "solution": solution, "task": False}
    if grade:
        meta["points"] = points
    return meta


# ------------------------------------------------------------------ expansion


class Expander:
    """Turns the cells of one source into instructor cells."""

    def __init__(self, name: str, path: Path):
        self.name = name
        self.path = path
        self.grade_ids: set[str] = set()
        self.student_names: set[str] = set()  # defined by answer cells so far
        self.plans: list[CellPlan] = []
        self.given_count = 0

    def fail(self, index: int, message: str):
        raise NotebookSourceError(f"{self.path}: セル {index + 1}: {message}")

    def claim(self, index: int, grade_id: str) -> str:
        if not GRADE_ID.match(grade_id):
            self.fail(index, f"grade_id {grade_id!r} に使えるのは英数字・'_'・'-' (64 文字まで) だけです")
        if grade_id in self.grade_ids:
            self.fail(index, f"grade_id {grade_id!r} が重複しています")
        self.grade_ids.add(grade_id)
        return grade_id

    def expand(self, index: int, cell) -> None:
        try:
            if cell.cell_type == "markdown":
                self.markdown(index, cell)
            elif cell.cell_type == "code":
                self.code(index, cell)
            else:
                self.plans.append(CellPlan(cell.cell_type))
        except DirectiveError as e:
            self.fail(index, str(e))

    def markdown(self, index: int, cell) -> None:
        written = cell.metadata.pop("written", None)
        points = cell.metadata.pop("points", None)
        if written is None:
            if points is not None:
                self.fail(index, "points は written と一緒に指定してください")
            self.plans.append(CellPlan("markdown"))
            return
        if not isinstance(points, (int, float)) or points <= 0:
            self.fail(index, "記述問題 (written) には正の points が必要です")
        grade_id = self.claim(index, str(written))
        cell.metadata["nbgrader"] = nbgrader_metadata(grade_id, grade=True, solution=True, points=points)
        self.plans.append(CellPlan("written", grade_id, float(points)))

    def code(self, index: int, cell) -> None:
        lines = cell.source.splitlines()
        first = lines[0] if lines else ""
        if GIVEN.match(first):
            self.given(index, cell, lines)
        elif m := SOLUTION.match(first):
            self.solution(index, cell, m, lines[1:])
        elif m := TESTS.match(first):
            self.tests(index, cell, m, lines[1:])
        else:
            if any(REFERENCE.match(line) for line in lines) or HIDDEN_BEGIN in cell.source:
                self.fail(index, "reference: と隠しテストは tests: のセルにだけ書けます")
            self.plans.append(CellPlan("free"))

    def given(self, index: int, cell, lines: list[str]) -> None:
        matches, rest = directive_lines(lines, GIVEN)
        refs = [r for m in matches for r in split_refs(m["refs"])]
        titles = [m["title"] for m in matches if m["title"]]
        parts = []
        if titles:
            parts.append(f"# 【配布コード・読み取り専用】{titles[0]}")
        parts += [reference_code(ref) for ref in refs]
        rest = strip_blank_edges(rest)
        if rest:
            parts.append("\n".join(rest))
        if not parts:
            self.fail(index, "given のセルが空です")
        cell.source = "\n\n\n".join(parts) if refs else "\n".join(parts)
        self.given_count += 1
        grade_id = self.claim(index, f"given-{self.given_count:02d}")
        cell.metadata["nbgrader"] = nbgrader_metadata(grade_id, locked=True)
        self.plans.append(CellPlan("given", grade_id, refs=refs))

    def solution(self, index: int, cell, m: re.Match, rest: list[str]) -> None:
        if strip_blank_edges(rest):
            self.fail(index, "solution: のセルには指示行だけを書いてください (コードは solutions から貼られます)")
        ref = m["ref"]
        methods = split_refs(m["methods"]) if m["methods"] is not None else None
        code = reference_code(ref)
        cell.source = with_solution_markers(code, methods)
        names = defined_names(code)
        grade_id = self.claim(index, ref.rsplit(".", 1)[-1])
        self.student_names |= names
        cell.metadata["nbgrader"] = nbgrader_metadata(grade_id, solution=True)
        self.plans.append(CellPlan("solution", grade_id, refs=[ref]))

    def tests(self, index: int, cell, m: re.Match, rest: list[str]) -> None:
        grade_id = self.claim(index, m["id"])
        points = float(m["points"])
        visible, hidden, refs = [], None, []
        for line in rest:
            if line.strip() == HIDDEN_BEGIN:
                if hidden is not None:
                    self.fail(index, "BEGIN HIDDEN TESTS が 2 回あります")
                hidden = []
            elif line.strip() == HIDDEN_END:
                if hidden is None:
                    self.fail(index, "END HIDDEN TESTS の前に BEGIN HIDDEN TESTS がありません")
                break
            elif hidden is None:
                if REFERENCE.match(line):
                    self.fail(index, "reference: は隠しテストの中にだけ書けます (学生に見えてしまいます)")
                visible.append(line)
            elif r := REFERENCE.match(line):
                refs += split_refs(r["refs"])
            else:
                hidden.append(line)
        else:
            if hidden is not None:
                self.fail(index, "END HIDDEN TESTS がありません")
        source = [f"# テスト {grade_id} ({points:g} 点)", *strip_blank_edges(visible)]
        if hidden is not None:
            source += [HIDDEN_BEGIN, *self.hidden_block(refs, strip_blank_edges(hidden)), HIDDEN_END]
        cell.source = "\n".join(source)
        cell.metadata["nbgrader"] = nbgrader_metadata(grade_id, grade=True, locked=True, points=points)
        self.plans.append(CellPlan("tests", grade_id, points, refs))

    def hidden_block(self, refs: list[str], checks: list[str]) -> list[str]:
        """The hidden checks in a function, with the references defined inside it
        (not as globals a student's function could call), run so that any failure
        is one AssertionError without a traceback into hidden code."""
        body = []
        if refs:
            body += hidden_reference(refs, self.student_names).splitlines() + ["", ""]
        body += checks
        indented = [("    " + line) if line.strip() else "" for line in body] or ["    pass"]
        return [
            "def _hidden_tests():",
            *indented,
            "",
            "",
            "import warnings as _warnings",
            "try:",
            "    with _warnings.catch_warnings():",
            "        _warnings.simplefilter('ignore')",
            "        _hidden_tests()",
            "except Exception as _error:  # 隠しテストのコードを表示せず、理由だけを示す",
            "    raise AssertionError(f'隠しテストで不合格: {type(_error).__name__}: {str(_error)[:300]}') from None",
            "finally:",
            "    del _hidden_tests",
        ]


def build_instructor_notebook(name: str, directory: Path = ASSIGNMENTS_DIR):
    """The instructor (nbgrader source) notebook of one assignment, and its cell plans."""
    import jupytext

    path = source_path(name, directory)
    nb = jupytext.read(path)
    expander = Expander(name, path)
    for index, cell in enumerate(nb.cells):
        expander.expand(index, cell)
    if not any(p.kind == "tests" for p in expander.plans):
        raise NotebookSourceError(f"{path}: tests: のセルが 1 つもありません")
    title = next((c.source.splitlines()[0].lstrip("# ").strip() for c in nb.cells
                  if c.cell_type == "markdown" and c.source.startswith("#")), name)
    nb.metadata = {
        "kernelspec": dict(KERNELSPEC),
        "language_info": {"name": "python"},
        META_KEY: {"assignment": name, "title": title},
    }
    counters = {"markdown": 0, "code": 0}
    for cell in nb.cells:
        if "tags" in cell.metadata and not cell.metadata["tags"]:
            del cell.metadata["tags"]
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id:
            cell.id = grade_id
        else:
            counters[cell.cell_type] = counters.get(cell.cell_type, 0) + 1
            cell.id = f"{cell.cell_type}-{counters[cell.cell_type]:02d}"
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    nb.nbformat, nb.nbformat_minor = 4, 5
    nbformat.validate(nb)
    return nb, expander.plans


def points_of(plans: list[CellPlan]) -> dict:
    auto = sum(p.points for p in plans if p.kind == "tests")
    manual = sum(p.points for p in plans if p.kind == "written")
    return {"auto": auto, "manual": manual, "total": auto + manual}


# ------------------------------------------------------------------ nbgrader course


def nbgrader_config(root: Path, **overrides):
    """The traitlets Config for nbgrader in a course folder (generation side)."""
    from traitlets.config import Config

    c = Config()
    c.CourseDirectory.root = str(root)
    c.CourseDirectory.course_id = COURSE_ID
    c.ClearSolutions.code_stub = {"python": CODE_STUB}
    c.ClearSolutions.text_stub = TEXT_STUB
    c.NbGraderAPI.log_level = "WARN"
    for key, value in overrides.items():
        section, _, trait = key.partition(".")
        setattr(c[section], trait, value)
    return c


def ensure_scripts_on_path() -> None:
    """nbgrader runs the `alembic` script of its environment when it creates a
    gradebook; put this interpreter's script folder on PATH (a venv's python
    is often run without activating the venv)."""
    import os

    scripts = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    if scripts not in path.split(os.pathsep):
        os.environ["PATH"] = scripts + (os.pathsep + path if path else "")


def make_api(root: Path, config=None):
    ensure_scripts_on_path()
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    config = config or nbgrader_config(root)
    coursedir = CourseDirectory(config=config)
    return NbGraderAPI(coursedir=coursedir, config=config)


def build_course(root: Path, names: list[str] | None = None, directory: Path = ASSIGNMENTS_DIR) -> dict:
    """Write instructor notebooks to root/source/ and run nbgrader generate_assignment
    (which fills root/gradebook.db and writes root/release/). Returns {name: plans}."""
    root = Path(root)
    names = names or assignment_names(directory)
    plans = {}
    for name in names:
        nb, plans[name] = build_instructor_notebook(name, directory)
        target = root / "source" / name / f"{name}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        write_notebook(nb, target)
    api = make_api(root)
    for name in names:
        result = api.generate_assignment(name, force=True, create=True)
        if not result["success"]:
            raise NotebookSourceError(f"nbgrader generate_assignment {name} に失敗しました:\n"
                                      f"{result.get('log', '')}\n{result.get('error', '')}")
    return plans


def write_notebook(nb, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = nbformat.writes(nb)
    path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")


def student_notebook(course_root: Path, name: str):
    """The released notebook of `name`, with only the metadata worth committing."""
    nb = nbformat.read(Path(course_root) / "release" / name / f"{name}.ipynb", as_version=4)
    nb.metadata = {k: nb.metadata[k] for k in ("kernelspec", "language_info", META_KEY) if k in nb.metadata}
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return nb


def check_student_notebook(nb, name: str) -> list[str]:
    """What must never be in a student notebook: solutions, hidden tests, imports of solutions."""
    problems = []
    for i, cell in enumerate(nb.cells, 1):
        src = cell.source
        for needle, what in ((SOLUTION_BEGIN, "解答"), (SOLUTION_END, "解答"), (HIDDEN_BEGIN, "隠しテスト"),
                             (HIDDEN_PREFIX, "参照実装"), ("_hidden_tests", "隠しテスト")):
            if needle in src:
                problems.append(f"{name}: セル {i} に{what} ({needle}) が残っています")
        if re.search(r"^\s*(from|import)\s+(solutions|autograder)\b", src, re.M):
            problems.append(f"{name}: セル {i} が solutions / autograder を import しています")
    return problems


# ------------------------------------------------------------------ release


def generate(out_dir: Path, names: list[str] | None = None, course_root: Path | None = None,
             directory: Path = ASSIGNMENTS_DIR) -> dict:
    """Generate the student notebooks into out_dir (returns {name: plans})."""
    names = names or assignment_names(directory)
    with tempfile.TemporaryDirectory(prefix="bw-release-") as tmp:
        root = Path(course_root) if course_root else Path(tmp) / "course"
        plans = build_course(root, names, directory)
        for name in names:
            nb = student_notebook(root, name)
            problems = check_student_notebook(nb, name)
            if problems:
                raise NotebookSourceError("\n".join(problems))
            write_notebook(nb, Path(out_dir) / f"{name}.ipynb")
    return plans


def canonical(nb) -> dict:
    """What the drift test compares: cell kinds, ids, sources and the metadata that
    matters (nbgrader, locking); volatile fields (outputs, counts) are left out."""
    def cell_view(cell):
        meta = {k: cell.metadata[k] for k in ("nbgrader", "deletable", "editable") if k in cell.metadata}
        return {"cell_type": cell.cell_type, "id": cell.get("id"), "source": cell.source, "metadata": meta}
    return {"metadata": {k: nb.metadata.get(k) for k in ("kernelspec", META_KEY)},
            "cells": [cell_view(c) for c in nb.cells]}


def notebook_differences(expected, actual, name: str) -> list[str]:
    a, b = canonical(expected), canonical(actual)
    if a == b:
        return []
    if a["metadata"] != b["metadata"]:
        return [f"{name}: ノートブックのメタデータが違います"]
    if len(a["cells"]) != len(b["cells"]):
        return [f"{name}: セルの数が違います (生成 {len(a['cells'])}、コミット済み {len(b['cells'])})"]
    out = []
    for i, (x, y) in enumerate(zip(a["cells"], b["cells"]), 1):
        if x != y:
            what = [k for k in x if x[k] != y[k]]
            out.append(f"{name}: セル {i} ({x['id']}) の {', '.join(what)} が違います")
    return out


def drift(exercises_dir: Path = EXERCISES_DIR, names: list[str] | None = None) -> list[str]:
    """Differences between the committed student notebooks and what the generator makes now."""
    names = names or assignment_names()
    problems = []
    with tempfile.TemporaryDirectory(prefix="bw-drift-") as tmp:
        generate(Path(tmp) / "out", names)
        for name in names:
            committed = Path(exercises_dir) / f"{name}.ipynb"
            if not committed.exists():
                problems.append(f"{name}: {committed} がありません")
                continue
            fresh = nbformat.read(Path(tmp) / "out" / f"{name}.ipynb", as_version=4)
            problems += notebook_differences(fresh, nbformat.read(committed, as_version=4), name)
    known = {f"{n}.ipynb" for n in assignment_names()}
    for extra in sorted(Path(exercises_dir).glob("[0-9][0-9]_*.ipynb")):
        if extra.name not in known:
            problems.append(f"{extra.name}: 対応するソースがありません (autograder/assignments/)")
    return problems


BUNDLE_CONFIG = '''\
# nbgrader の設定 (bert-workshop release --bundle が生成)。
# このフォルダで `nbgrader autograde <課題名>` / `nbgrader generate_feedback <課題名>` が使えます。
from nbgrader.preprocessors import ClearHiddenTests, GetGrades
from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor

c = get_config()
c.CourseDirectory.course_id = "{course_id}"
c.ClearSolutions.code_stub = {{"python": {code_stub!r}}}
c.ClearSolutions.text_stub = {text_stub!r}
c.Execute.timeout = 300                       # 1 セルの制限時間 (秒)
c.OverwriteCells.add_missing_cells = True     # 消されたテストセルを元に戻す
c.GenerateFeedback.preprocessors = [GetGrades, CSSHTMLHeaderPreprocessor, ClearHiddenTests]
'''

BUNDLE_README = '''\
# BERT ワークショップ 採点用パッケージ

このフォルダは nbgrader のコースフォルダです (`solutions/` がなくても動きます)。

- `source/<課題>/<課題>.ipynb`: 教員用ノートブック (解答と隠しテスト入り。受講者に配らないこと)
- `release/<課題>/<課題>.ipynb`: 受講者に配るノートブック (`exercises/` と同じ)
- `gradebook.db`: 課題を登録済みの nbgrader の成績簿
- `nbgrader_config.py`: 設定 (隠しテストはフィードバックに出しません)

採点のしかた:

    bert-workshop autograde 提出フォルダまたは.zip --course この.zip --out 採点結果/ --workers 2

`採点結果/` に成績 (grades.csv)、フィードバック、成績簿 (gradebook.db) ができます。記述問題は
そのフォルダで formgrader を開いて手で採点します。遅れた提出や再提出は、同じ `--out` にもう一度
autograde すると加わります (前回の結果と手で付けた点数は残り、採点し直した受講者だけが置き換わります。
作り直すときは `--fresh`)。`--out` はこのコースや提出とは別のフォルダにしてください。

または nbgrader だけで: `submitted/<受講者>/<課題>/<課題>.ipynb` に提出を置き、
`nbgrader autograde <課題>`、`nbgrader generate_feedback <課題>`、`nbgrader export`。

課題と配点:

{points}
'''


def write_bundle(path: Path, names: list[str] | None = None, course_root: Path | None = None) -> Path:
    """A zip with a complete nbgrader course (source, release, gradebook, config)
    that grades a class without the solutions package. course_root: an existing
    course made by build_course (else one is built)."""
    names = names or assignment_names()
    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="bw-bundle-") as tmp:
        root = Path(tmp) / "course"
        if course_root is None:
            plans = build_course(root, names)
        else:
            plans = {name: build_instructor_notebook(name)[1] for name in names}
            for name in names:
                for kind in ("source", "release"):
                    shutil.copytree(Path(course_root) / kind / name, root / kind / name)
            shutil.copyfile(Path(course_root) / "gradebook.db", root / "gradebook.db")
        (root / "nbgrader_config.py").write_text(BUNDLE_CONFIG.format(
            course_id=COURSE_ID, code_stub=CODE_STUB, text_stub=TEXT_STUB), encoding="utf-8")
        lines = [f"- {n}: 自動採点 {points_of(p)['auto']:g} 点 + 記述 {points_of(p)['manual']:g} 点"
                 for n, p in plans.items()]
        (root / "README.md").write_text(BUNDLE_README.format(points="\n".join(lines)), encoding="utf-8")
        (root / "bundle.json").write_text(json.dumps(
            {"course_id": COURSE_ID, "assignments": {n: points_of(p) for n, p in plans.items()}},
            ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        path.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            for file in sorted(root.rglob("*")):
                if file.is_file() and ".ipynb_checkpoints" not in file.parts:
                    zf.write(file, Path("course") / file.relative_to(root))
    return path


# ------------------------------------------------------------------ command line


def run_release(args) -> int:
    names = args.assignment or None
    try:
        if args.check:
            problems = drift(Path(args.out), names)
            for p in problems:
                print(p, file=sys.stderr)
            if problems:
                print("ノートブックが古くなっています: bert-workshop release で作り直してください", file=sys.stderr)
                return 1
            print("exercises/ のノートブックは最新です", file=sys.stderr)
            return 0
        plans = generate(Path(args.out), names)
        for name, p in plans.items():
            pts = points_of(p)
            print(f"{Path(args.out) / (name + '.ipynb')}: 自動採点 {pts['auto']:g} 点 + 記述 {pts['manual']:g} 点",
                  file=sys.stderr)
        if args.bundle:
            write_bundle(Path(args.bundle), names)
            print(f"採点用パッケージを {args.bundle} に書きました", file=sys.stderr)
    except NotebookSourceError as e:
        print(f"エラー: {e}", file=sys.stderr)
        return 1
    return 0


def release_usage_problem(args) -> str | None:
    """Options that contradict, said before any notebook is written."""
    if args.check and args.bundle:
        return "--check は確かめるだけで何も書きません。--bundle は --check なしで実行してください"
    if args.bundle and Path(args.bundle).is_dir():
        return f"--bundle {args.bundle}: フォルダです (書き出す zip ファイルの名前を指定してください)"
    return None


def register(subparsers) -> argparse.ArgumentParser:
    """Add ``release`` to the bert-workshop command."""
    p = subparsers.add_parser(
        "release", help="演習ノートブックを作り直す (autograder/assignments/*.md + solutions → exercises/)",
        description="課題ソースと参照実装から教員用ノートブックを作り、nbgrader generate_assignment で"
                    "受講者用ノートブック (exercises/) を生成します。")
    p.add_argument("--out", default=str(EXERCISES_DIR), help="受講者用ノートブックの出力先 (既定 exercises/)")
    p.add_argument("--assignment", action="append", help="この課題だけ (複数指定可。既定: すべて)")
    p.add_argument("--bundle", help="採点用パッケージ (nbgrader のコース一式) の zip も書く")
    p.add_argument("--check", action="store_true", help="生成せず、コミット済みのノートブックが最新か確かめる")
    p.set_defaults(func=run_release, check_usage=release_usage_problem)
    return p


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder.notebooks")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
