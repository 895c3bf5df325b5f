"""The exercise notebooks: generated from the assignment sources and solutions/, clean, up to date."""
from __future__ import annotations

import ast
import json
import re
import textwrap
import zipfile
from pathlib import Path

import nbformat
import pytest

from autograder import exercise_refs as refs
from autograder.notebooks import (EXERCISES_DIR, META_KEY, NotebookSourceError, assignment_names,
                                  build_instructor_notebook, check_student_notebook, drift, points_of, write_bundle)

EXPECTED = ["01_basics", "02_tokenization", "03_embeddings", "04_attention", "05_residual_layernorm",
            "06_bert", "07_mlm", "08_finetune"]


def nbgrader(cell) -> dict:
    return cell.metadata.get("nbgrader", {})


def test_the_eight_assignments_have_sources_and_student_notebooks():
    assert assignment_names() == EXPECTED
    for name in EXPECTED:
        assert (EXERCISES_DIR / f"{name}.ipynb").is_file(), f"exercises/{name}.ipynb がありません: bert-workshop release"


@pytest.mark.parametrize("name", EXPECTED)
def test_instructor_notebook_structure(name):
    nb, plans = build_instructor_notebook(name)
    points = points_of(plans)
    assert points["auto"] >= 5 and points["manual"] >= 2
    ids = [nbgrader(c)["grade_id"] for c in nb.cells if "nbgrader" in c.metadata]
    assert len(ids) == len(set(ids))
    tests = [c for c in nb.cells if nbgrader(c).get("grade") and not nbgrader(c).get("solution")]
    assert tests and all("### BEGIN HIDDEN TESTS" in c.source for c in tests), "every test cell has hidden tests"
    answers = [c for c in nb.cells if nbgrader(c).get("solution") and c.cell_type == "code"]
    assert answers and all("### BEGIN SOLUTION" in c.source for c in answers)
    for cell in nb.cells:
        if cell.cell_type == "code":
            compile(cell.source, f"{name}:{cell.id}", "exec")  # plain Python (no magics)
            assert not re.search(r"^\s*(from|import)\s+(solutions|autograder)\b", cell.source, re.M)
    assert nb.metadata[META_KEY]["assignment"] == name


@pytest.mark.parametrize("name", EXPECTED)
def test_student_notebook_has_no_solution_and_no_hidden_test(name):
    nb = nbformat.read(EXERCISES_DIR / f"{name}.ipynb", as_version=4)
    nbformat.validate(nb)
    assert check_student_notebook(nb, name) == []
    assert nb.metadata[META_KEY]["assignment"] == name
    answers = [c for c in nb.cells if nbgrader(c).get("solution") and c.cell_type == "code"]
    assert answers and all("raise NotImplementedError()" in c.source for c in answers)
    written = [c for c in nb.cells if nbgrader(c).get("solution") and c.cell_type == "markdown"]
    assert written and all("模範解答" not in c.source for c in written)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
        if nbgrader(cell).get("locked"):
            assert cell.metadata.get("editable") is False and cell.metadata.get("deletable") is False
    first_code = next(c for c in nb.cells if c.cell_type == "code")
    assert nbgrader(first_code).get("locked"), "the first code cell (setup, Colab installs) is given code"


def undefined_names(cells) -> list[str]:
    """Names a notebook's code uses but never defines, read in cell order (pyflakes)."""
    from pyflakes.checker import Checker
    from pyflakes.messages import UndefinedName

    code = "\n\n".join(c.source for c in cells if c.cell_type == "code")
    tree = ast.parse(code)
    return sorted({str(m.message_args[0]) for m in Checker(tree).messages if isinstance(m, UndefinedName)})


@pytest.mark.parametrize("name", EXPECTED)
def test_pasted_code_brings_every_name_it_uses(name):
    """Given code pasted from solutions/ must bring its helpers along: a missing
    one fails only when the student runs the cell."""
    instructor, _ = build_instructor_notebook(name)
    assert undefined_names(instructor.cells) == []
    student = nbformat.read(EXERCISES_DIR / f"{name}.ipynb", as_version=4)
    assert undefined_names(student.cells) == []


def test_the_undefined_name_check_sees_a_missing_helper():
    cells = [nbformat.v4.new_code_cell("def f(x):\n    return helper(x)"),
             nbformat.v4.new_code_cell("import math\nprint(f(math.pi))")]
    assert undefined_names(cells) == ["helper"]


def test_committed_notebooks_match_the_generator():
    """The drift test: regenerate every student notebook and compare with exercises/."""
    problems = drift()
    assert problems == [], "exercises/ が古くなっています。`bert-workshop release` で作り直してください:\n" + "\n".join(problems)


# ------------------------------------------------------------------ the generator's pieces


def test_solution_markers_keep_signature_and_docstring():
    code = refs.reference_code("solutions.attention.scaled_dot_product_attention")
    marked = refs.with_solution_markers(code)
    before, _, after = marked.partition(refs.SOLUTION_BEGIN)
    assert before.startswith("def scaled_dot_product_attention(q, k, v, mask=None")
    assert '"""softmax(Q Kᵀ / √d_k) V' in before and "math.sqrt" not in before
    assert "math.sqrt" in after and after.rstrip().endswith(refs.SOLUTION_END)


def test_solution_markers_on_chosen_methods_only():
    code = refs.reference_code("solutions.attention.MultiHeadAttention")
    marked = refs.with_solution_markers(code, ["split_heads", "forward"])
    assert marked.count(refs.SOLUTION_BEGIN) == 2
    init = marked[marked.index("def __init__"):marked.index("def split_heads")]
    assert refs.SOLUTION_BEGIN not in init and "self.query = nn.Linear" in init
    with pytest.raises(refs.DirectiveError):
        refs.with_solution_markers(code)
    with pytest.raises(refs.DirectiveError):
        refs.with_solution_markers(code, ["no_such_method"])


def test_relative_imports_are_dropped_from_pasted_code():
    code = refs.reference_code("solutions.layers.EncoderLayer")
    assert "from .attention" not in code and "self.attention = MultiHeadAttention(config)" in code
    module = refs.reference_code("solutions.models")
    assert "from ." not in module and "from __future__" not in module and "class BertModel" in module


def test_rename_touches_names_not_attributes_or_strings():
    code = 'def f(x):\n    return F.layer_norm(x) + layer_norm(x)  # layer_norm\ns = "layer_norm"\n'
    out = refs.rename(code, {"layer_norm": "_ref_layer_norm", "f": "_ref_f"})
    assert out == 'def _ref_f(x):\n    return F.layer_norm(x) + _ref_layer_norm(x)  # layer_norm\ns = "layer_norm"\n'


def test_hidden_reference_refuses_to_use_student_code():
    with pytest.raises(refs.DirectiveError, match="scaled_dot_product_attention"):
        refs.hidden_reference(["solutions.attention.MultiHeadAttention"], {"scaled_dot_product_attention"})
    code = refs.hidden_reference(["solutions.attention.scaled_dot_product_attention",
                                  "solutions.attention.MultiHeadAttention"], {"scaled_dot_product_attention"})
    assert "class _ref_MultiHeadAttention" in code and "= _ref_scaled_dot_product_attention(q, k, v" in code
    ast.parse(code)


def test_module_level_constants_can_be_pasted():
    assert refs.reference_code("solutions.mlm.IGNORE_INDEX").startswith("IGNORE_INDEX = -100")
    assert "LAYER_MODULES = {" in refs.reference_code("solutions.checkpoints.LAYER_MODULES")
    with pytest.raises(refs.DirectiveError):
        refs.reference_code("solutions.attention.no_such_thing")
    with pytest.raises(refs.DirectiveError):
        refs.reference_code("no_such_package.module.name")


def write_source(tmp_path: Path, name: str, cells: str) -> Path:
    text = textwrap.dedent("""\
        ---
        jupytext:
          text_representation:
            extension: .md
            format_name: myst
        kernelspec:
          display_name: Python 3
          language: python
          name: python3
        ---

        # テスト用
        """) + textwrap.dedent(cells)
    (tmp_path / f"{name}.md").write_text(text, encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize("cells, message", [
    ("```{code-cell} ipython3\n# solution: solutions.attention.nope\n```\n", "nope"),
    ("```{code-cell} ipython3\n# solution: solutions.attention.key_padding_mask\nx = 1\n```\n", "指示行だけ"),
    ("```{code-cell} ipython3\n# tests: t points=1\n# reference: solutions.mlm.mask_tokens\n```\n", "隠しテストの中"),
    ("```{code-cell} ipython3\n# tests: t points=1\n### BEGIN HIDDEN TESTS\nx = 1\n```\n", "END HIDDEN"),
    ("```{code-cell} ipython3\n# tests: t points=1\nx = 1\n```\n\n```{code-cell} ipython3\n# tests: t points=1\n"
     "y = 1\n```\n", "重複"),
    ("+++ {\"written\": \"w\"}\n\n答え\n", "points"),
])
def test_source_errors_say_where(tmp_path, cells, message):
    directory = write_source(tmp_path, "99_bad", cells)
    with pytest.raises(NotebookSourceError, match=message) as info:
        build_instructor_notebook("99_bad", directory)
    assert "99_bad.md" in str(info.value)


def test_bundle_is_a_complete_nbgrader_course(tmp_path, built_course):
    bundle = write_bundle(tmp_path / "course.zip", EXPECTED, course_root=built_course)
    with zipfile.ZipFile(bundle) as zf:
        names = set(zf.namelist())
        config = zf.read("course/nbgrader_config.py").decode()
        info = json.loads(zf.read("course/bundle.json"))
    for name in EXPECTED:
        assert f"course/source/{name}/{name}.ipynb" in names
        assert f"course/release/{name}/{name}.ipynb" in names
    assert {"course/gradebook.db", "course/README.md"} <= names
    assert "ClearHiddenTests" in config and "add_missing_cells = True" in config
    assert info["assignments"]["01_basics"] == {"auto": 8.0, "manual": 2.0, "total": 10.0}


def test_release_and_autograde_register_their_subcommands():
    import argparse

    from autograder import grading, notebooks

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    notebooks.register(sub)
    grading.register(sub)
    args = parser.parse_args(["release", "--check"])
    assert args.func is notebooks.run_release and args.check
    args = parser.parse_args(["autograde", "class.zip", "--workers", "4", "--device", "cuda", "--memory-limit", "2G"])
    assert args.func is grading.run_autograde and args.workers == 4 and args.device == "cuda"
    assert grading.parse_size("2G") == 2 * 2**30 and grading.parse_size("512M") == 512 * 2**20


@pytest.fixture(scope="session")
def built_course():
    from test_autograde_support import built_course_root

    return built_course_root()


def test_grading_code_does_not_need_solutions():
    """A graded class receives the bundle: the grader must run without the solutions package."""
    import subprocess
    import sys

    code = ("import sys\n"
            "class Block:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] == 'solutions':\n"
            "            raise ImportError(name)\n"
            "sys.meta_path.insert(0, Block())\n"
            "import autograder.grading, autograder.grading_worker, autograder.grading_classgen\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
