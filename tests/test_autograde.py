"""The autograder on nbgrader's real machinery: full marks for the reference notebooks,
zero for untouched ones, expected partial scores, every robustness case, serial == parallel."""
from __future__ import annotations

import copy
import glob
import json
import os
import re
import shutil
import socket
import tempfile
import threading
import zipfile
from pathlib import Path

import nbformat
import pytest

from autograder.grading import autograde, probe_isolation
from autograder.grading_classgen import max_auto_score, prefix_filled
from autograder.grading_gradebook import gradebook_scores, read_csv
from autograder.grading_submissions import collect_submissions
from autograder.notebooks import COURSE_ID, META_KEY, assignment_names, write_bundle
from test_autograde_support import appended_to_cell, built_course_root, cell_index, read, with_cell_source, write

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.timeout(900)

SNOOP_MARKER = "snoop-started"  # written by the snoop student's kernel into its working folder


def left_behind_paths() -> list[Path]:
    """Files the snoop student tries to leave on the machine: a .pth file would run in
    the grader's next Python, a module beside solutions/ could shadow the grader's code."""
    import sysconfig

    return [Path(sysconfig.get_paths()["purelib"]) / "zz_snoop.pth", ROOT / "zz_snoop.py"]


@pytest.fixture(scope="module")
def course() -> Path:
    return built_course_root()


def rows_by_student(out: Path) -> dict:
    return {(r["student"], r["assignment"]): r for r in read_csv(out / "grades.csv")}


def hidden_free(html: Path) -> bool:
    text = html.read_text(encoding="utf-8")
    return not any(s in text for s in ("BEGIN HIDDEN TESTS", "_ref_", "_hidden_tests"))


# ------------------------------------------------------------------ submissions without grading


def test_submission_layouts_are_recognised(tmp_path, course):
    release = read(course, "release", "01_basics")
    releases = {"01_basics": release}
    write(release, tmp_path / "nbgrader" / "submitted" / "aoki" / "01_basics" / "01_basics.ipynb")
    (tmp_path / "nbgrader" / "submitted" / "aoki" / "01_basics" / "timestamp.txt").write_text("2025-06-01 10:00:00")
    flat = tmp_path / "flat"
    write(release, flat / "ito.ipynb")                                 # metadata says 01_basics
    anonymous = copy.deepcopy(release)
    del anonymous.metadata[META_KEY]
    write(anonymous, flat / "ueda_01_basics.ipynb")                      # the file name says it
    write(anonymous, flat / "endo.ipynb")                                # nothing says it
    other = copy.deepcopy(release)
    other.metadata[META_KEY]["assignment"] = "99_unknown"
    write(other, flat / "oda.ipynb")
    (flat / "kato.ipynb").write_text('{"cells": [', encoding="utf-8")    # not JSON
    write(release, flat / "ito (1).ipynb")                              # a second, newer copy of ito's
    os.utime(flat / "ito.ipynb", (1_700_000_000, 1_700_000_000))
    archive = tmp_path / "colab.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("class/山田 花子.ipynb", nbformat.writes(release))
        zf.writestr("class/.ipynb_checkpoints/x.ipynb", "{}")
        zf.writestr("../evil.ipynb", nbformat.writes(release))
    found = collect_submissions([tmp_path / "nbgrader", flat, archive], {"01_basics"}, tmp_path / "inbox", releases)
    by = {(s.student, s.source.split("/")[-1]): s for s in found}
    assert by[("aoki", "01_basics.ipynb")].gradable and by[("aoki", "01_basics.ipynb")].timestamp
    assert by[("ito", "ito (1).ipynb")].gradable and by[("ueda", "ueda_01_basics.ipynb")].assignment == "01_basics"
    assert by[("endo", "endo.ipynb")].status == "unknown_assignment"
    assert by[("oda", "oda.ipynb")].status == "unknown_assignment" and "99_unknown" in by[("oda", "oda.ipynb")].reason
    assert by[("kato", "kato.ipynb")].status == "invalid_notebook"
    assert "1 行 12 文字目" in by[("kato", "kato.ipynb")].reason  # where the cut download ends
    assert by[("ito", "ito.ipynb")].status == "duplicate_submission"
    assert by[("山田_花子", "山田 花子.ipynb")].gradable
    evil = by[("evil", "evil.ipynb")]  # reported, not extracted
    assert evil.status == "invalid_notebook" and "フォルダの外" in evil.reason and evil.source == "colab.zip/../evil.ipynb"
    assert not any("checkpoints" in s.source for s in found)
    assert not (tmp_path / "evil.ipynb").exists()
    hinted = collect_submissions([flat / "endo.ipynb"], {"01_basics"}, tmp_path / "inbox2", releases,
                                 assignment_hint="01_basics")
    assert hinted[0].gradable


@pytest.mark.parametrize("content, reason", [
    (b"", "空のファイルです"),
    (b"  \n", "空のファイルです"),
    (b'{"cells": [{"cell_type": "code",\n  "source": "x = 1"\n  "metadata": {}}]}', "3 行 3 文字目"),  # the missing comma
    (b"[]", "最上位に cells がありません"),
    (b"{}", "最上位に cells がありません"),
    (b'{"cells": "none", "metadata": {}, "nbformat": 4, "nbformat_minor": 5}', "cells がリストではありません"),
    # Damage that nbformat reports in English only, or fails on: the place and what is wrong.
    (b'{"cells": ["x = 1"], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}',
     "セル 1: JSON のオブジェクトではありません (\"x = 1\")"),
    (b'{"cells": [{"cell_type": "markdown", "source": "", "metadata": {}}, {"cell_type": "code", "source": "",'
     b' "metadata": [], "outputs": [], "execution_count": null}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}',
     "セル 2: metadata がないか、オブジェクトではありません"),
    (b'{"cells": [{"cell_type": "code", "source": "x", "metadata": {}, "execution_count": null}], "metadata": {},'
     b' "nbformat": 4, "nbformat_minor": 5}', "セル 1: outputs がないか"),
    (b'{"cells": [{"cell_type": "code", "source": "x", "metadata": {}, "outputs": [{"output_type": "stream"}],'
     b' "execution_count": null}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}',
     "セル 1 の outputs[0]: name がありません"),
    ("{}".encode("utf-16"), "UTF-8 のテキストではありません"),
])
def test_an_unreadable_notebook_says_why_and_where(tmp_path, content, reason):
    from autograder.grading_submissions import read_notebook

    path = tmp_path / "student.ipynb"
    path.write_bytes(content)
    nb, why = read_notebook(path)
    assert nb is None and reason in why, why
    assert not re.search("[A-Za-z]{3,} [a-z]{3,} [a-z]{3,}", why.split(" (")[0]), why  # not English


def test_a_folder_or_a_broken_link_named_like_a_notebook_is_a_reason(tmp_path):
    from autograder.grading_submissions import read_notebook

    (tmp_path / "folder.ipynb").mkdir()
    (tmp_path / "link.ipynb").symlink_to(tmp_path / "nowhere.ipynb")
    assert read_notebook(tmp_path / "folder.ipynb") == (None, "読めません: フォルダです (ファイルを指定してください)")
    assert read_notebook(tmp_path / "link.ipynb") == (None, "読めません: 見つかりません")


@pytest.mark.parametrize("wrapper", ["", "class/", "class/submitted/"])
def test_a_zip_member_left_out_is_credited_to_its_student(tmp_path, monkeypatch, wrapper):
    """A member not extracted (here: over the size limit) is named by its place in the
    zip, as an extracted one is: bob's row is bob's, not "unknown"'s."""
    import autograder.grading_submissions as submissions

    release = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    small = nbformat.writes(release)
    monkeypatch.setattr(submissions, "MAX_ZIP_BYTES", 2 * len(small.encode()))
    archive = tmp_path / "class.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(f"{wrapper}alice/03_embeddings/03_embeddings.ipynb", small)
        zf.writestr(f"{wrapper}bob/03_embeddings/03_embeddings.ipynb", small + " " * len(small) * 2)
    found = collect_submissions([archive], {"03_embeddings"}, tmp_path / "inbox", {"03_embeddings": release})
    by = {s.student: s for s in found}
    assert set(by) == {"alice", "bob"}, [(s.student, s.source) for s in found]
    assert by["alice"].gradable and by["alice"].assignment == "03_embeddings"
    assert by["bob"].status == "invalid_notebook" and "大きすぎる" in by["bob"].reason
    assert by["bob"].assignment == "03_embeddings"
    assert by["bob"].source == f"class.zip/{wrapper}bob/03_embeddings/03_embeddings.ipynb"


def test_a_cut_zip_is_said_to_be_a_broken_zip_and_the_other_inputs_are_read(tmp_path):
    """A class zip cut short in the download is not "a notebook that is not UTF-8"."""
    release = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    archive = tmp_path / "class.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("alice/03_embeddings/03_embeddings.ipynb", nbformat.writes(release))
    cut = tmp_path / "cut.zip"
    cut.write_bytes(archive.read_bytes()[:-30])
    (tmp_path / "bob").mkdir()
    (tmp_path / "bob" / "03_embeddings.ipynb").write_text(nbformat.writes(release), encoding="utf-8")
    found = collect_submissions([cut, tmp_path / "bob"], {"03_embeddings"}, tmp_path / "inbox",
                                {"03_embeddings": release})
    by = {s.source: s for s in found}
    assert by["cut.zip"].status == "invalid_notebook" and "zip として読めません" in by["cut.zip"].reason
    assert by["bob/03_embeddings.ipynb"].gradable


def test_a_notebook_of_no_known_assignment_names_the_option_that_places_it(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    (tmp_path / "subs").mkdir()
    (tmp_path / "subs" / "alice.ipynb").write_text(nbformat.writes(nb), encoding="utf-8")
    found = collect_submissions([tmp_path / "subs"], {"03_embeddings", "04_attention"}, tmp_path / "inbox",
                                {"03_embeddings": nb, "04_attention": nb})
    assert [s.status for s in found] == ["unknown_assignment"]
    assert "--default-assignment" in found[0].reason


def test_the_summary_says_which_submissions_got_no_score_and_why(capsys):
    from autograder.grading import MAX_SHOWN_ROWS, print_unscored
    from autograder.grading_gradebook import Row

    rows = [Row("alice", "03_embeddings", "graded", file="alice.ipynb"),
            Row("cut", "", "invalid_notebook", ["zip として読めません"], file="cut.zip")]
    rows += [Row(f"s{i}", "", "unknown_assignment", ["課題を判定できません"], file=f"s{i}.ipynb") for i in range(12)]
    print_unscored(rows)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].strip() == "cut.zip: invalid_notebook (zip として読めません)"
    assert len(lines) == MAX_SHOWN_ROWS + 1 and "alice" not in "".join(lines)
    assert lines[-1].strip() == f"ほか {13 - MAX_SHOWN_ROWS} 件 (理由は grades.csv の reason 欄)"


def test_a_wrapping_folder_whose_name_is_too_long_is_reported_not_the_end(tmp_path):
    """About 86 kanji pass the disk's 255 bytes: every member is left out, and looking
    for its submitted/ folder must not raise (pathlib's is_dir does, on Python 3.11)."""
    release = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    archive = tmp_path / "class.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for student in ("alice", "bob"):
            zf.writestr("課" * 90 + f"/{student}/03_embeddings/03_embeddings.ipynb", nbformat.writes(release))
    found = collect_submissions([archive], {"03_embeddings"}, tmp_path / "inbox", {"03_embeddings": release})
    assert {s.student for s in found} == {"alice", "bob"}
    assert all(s.status == "invalid_notebook" and "名前が長すぎます" in s.reason for s in found)


def test_a_full_disk_while_extracting_is_the_graders_error_not_the_students(tmp_path, monkeypatch):
    import errno
    import shutil as shutil_module

    def no_space(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    release = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    archive = tmp_path / "class.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("alice/03_embeddings/03_embeddings.ipynb", nbformat.writes(release))
    monkeypatch.setattr(shutil_module, "copyfileobj", no_space)
    with pytest.raises(OSError) as info:
        collect_submissions([archive], {"03_embeddings"}, tmp_path / "inbox", {"03_embeddings": release})
    assert info.value.errno == errno.ENOSPC


def test_tampering_is_detected_and_repaired_before_grading(tmp_path, course):
    release = read(course, "release", "01_basics")
    releases = {"01_basics": release}
    deleted = copy.deepcopy(release)
    del deleted.cells[cell_index(deleted, "softmax"):cell_index(deleted, "test_softmax") + 1]  # answer and test
    edited = with_cell_source(release, "test_cross_entropy", "pass")
    retyped = copy.deepcopy(release)
    retyped.cells[cell_index(retyped, "test_batch_loss")].cell_type = "raw"
    retyped.cells[cell_index(retyped, "test_batch_loss")].pop("outputs", None)
    retyped.cells[cell_index(retyped, "test_batch_loss")].pop("execution_count", None)
    duplicated = copy.deepcopy(release)
    i = cell_index(duplicated, "test_softmax")
    duplicated.cells.insert(i, copy.deepcopy(duplicated.cells[i]))
    duplicated.cells[i].id = "copied-cell"
    greedy = copy.deepcopy(release)  # more points for a test, and an answer cell made "locked"
    greedy.cells[cell_index(greedy, "test_softmax")].metadata["nbgrader"]["points"] = 100
    greedy.cells[cell_index(greedy, "softmax")].metadata["nbgrader"]["locked"] = True
    stripped = copy.deepcopy(release)  # an editor that dropped the nbgrader metadata
    for cell in stripped.cells:
        cell.metadata.pop("nbgrader", None)
    for name, nb in [("deleted", deleted), ("edited", edited), ("retyped", retyped), ("duplicated", duplicated),
                     ("greedy", greedy), ("stripped", stripped)]:
        write(nb, tmp_path / "in" / f"{name}.ipynb")
    found = {s.student: s for s in collect_submissions([tmp_path / "in"], {"01_basics"}, tmp_path / "inbox", releases)}
    assert found["deleted"].tampered and "test_softmax" in " ".join(found["deleted"].notes)
    assert "答えのセル (softmax) がありません" in " ".join(found["deleted"].notes)
    repaired = nbformat.read(found["deleted"].notebook, as_version=4)
    assert cell_index(repaired, "test_softmax") < cell_index(repaired, "test_cross_entropy")
    assert found["edited"].tampered and "書き換えられていた" in " ".join(found["edited"].notes)
    assert found["retyped"].tampered and "種類" in " ".join(found["retyped"].notes)
    assert found["duplicated"].tampered and "2 個" in " ".join(found["duplicated"].notes)
    greedy_notes = " ".join(found["greedy"].notes)
    assert found["greedy"].tampered and "メタデータ" in greedy_notes
    assert "test_softmax" in greedy_notes and "softmax," in greedy_notes
    fixed = nbformat.read(found["greedy"].notebook, as_version=4)
    assert fixed.cells[cell_index(fixed, "test_softmax")].metadata["nbgrader"]["points"] == 2
    assert not found["stripped"].tampered and "メタデータ" in " ".join(found["stripped"].notes)
    restored = nbformat.read(found["stripped"].notebook, as_version=4)
    assert cell_index(restored, "softmax") >= 0 and cell_index(restored, "test_training") >= 0


# ------------------------------------------------------------------ grading


@pytest.mark.slow
def test_reference_notebooks_full_marks_untouched_zero(tmp_path, course):
    """The whole course, graded from a release --bundle zip (no solutions/ needed), 2 workers."""
    names = assignment_names()
    bundle = write_bundle(tmp_path / "bundle.zip", names, course_root=course)
    submitted = tmp_path / "class" / "submitted"
    for name in names:
        write(read(course, "source", name), submitted / "reference" / name / f"{name}.ipynb")
        write(read(course, "release", name), submitted / "untouched" / name / f"{name}.ipynb")
    # A notebook that was run on a Colab GPU: graded on the CPU with the small sizes.
    gpu = read(course, "source", "08_finetune")
    gpu.metadata.update({"accelerator": "GPU", "colab": {"gpuType": "T4", "provenance": []}})
    setup = gpu.cells[cell_index(gpu, "given-01")]
    setup.outputs = [nbformat.v4.new_output("stream", name="stdout", text="装置: cuda\n")]
    write(gpu, submitted / "colab_gpu" / "08_finetune" / "08_finetune.ipynb")

    out = tmp_path / "out"
    summary = autograde([tmp_path / "class"], out, course=bundle, workers=2, cell_timeout=300, notebook_timeout=600)
    rows = rows_by_student(out)
    assert len(rows) == 2 * len(names) + 1
    for name in names:
        ref, untouched = rows[("reference", name)], rows[("untouched", name)]
        assert ref["status"] == "graded", ref
        assert float(ref["score"]) == float(ref["max_score"]) - float(ref["manual_pending"]) > 0, ref
        assert float(ref["manual_pending"]) > 0  # the written answers wait for a human
        assert untouched["status"] == "graded" and float(untouched["score"]) == 0, untouched
        for student in ("reference", "untouched"):
            html = out / "feedback" / student / f"{name}.html"
            assert html.is_file() and hidden_free(html)
        assert "BEGIN HIDDEN TESTS" in (out / "autograded" / "reference" / name / f"{name}.ipynb").read_text()
    gpu_row = rows[("colab_gpu", "08_finetune")]
    assert gpu_row["status"] == "graded" and float(gpu_row["score"]) == 15, gpu_row
    executed = nbformat.read(out / "autograded" / "colab_gpu" / "08_finetune" / "08_finetune.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.outputs)
    assert "装置: cpu" in printed and "エポック 8" in printed  # the CPU sizes (8 epochs of 240 pages)
    scores = gradebook_scores(out / "gradebook.db", COURSE_ID)
    assert len(scores) == 2 * len(names) + 1
    info = json.loads((out / "summary.json").read_text())
    assert info["graded_notebooks"] == 2 * len(names) + 1
    slow = {k: v for k, v in info["seconds_per_notebook"].items() if v > 120}
    assert not slow, f"every notebook must run in under 2 minutes on 2 cores (here 2 at a time): {slow}"
    assert summary.counts() == {"graded": 2 * len(names) + 1}


def test_files_that_cannot_be_graded_are_reported_and_the_rest_is_graded(tmp_path, course):
    """A folder named *.ipynb, a broken link, a zip inside the submissions, a zip member
    named outside its folder: each a row with its reason, and the class is graded.
    Broken nbgrader metadata (not a dict) is restored from the release, as missing metadata is."""
    full = read(course, "source", "01_basics")
    broken = copy.deepcopy(full)
    broken.cells[cell_index(broken, "test_softmax")].metadata["nbgrader"] = "garbage"
    broken.cells[cell_index(broken, "softmax")].metadata["nbgrader"] = ["x"]
    stripped = copy.deepcopy(full)  # only the answer cell lost its metadata
    del stripped.cells[cell_index(stripped, "softmax")].metadata["nbgrader"]
    flat = tmp_path / "in"
    write(broken, flat / "broken.ipynb")
    write(stripped, flat / "stripped.ipynb")
    (flat / "folder.ipynb").mkdir()
    (flat / "link.ipynb").symlink_to(tmp_path / "nowhere.ipynb")
    with zipfile.ZipFile(flat / "inner.zip", "w") as zf:
        zf.writestr("inner.ipynb", nbformat.writes(full))
    long_name = "a" * 300  # longer than a file name may be
    with zipfile.ZipFile(tmp_path / "class.zip", "w") as zf:
        zf.writestr("../../evil.ipynb", nbformat.writes(full))
        zf.writestr("hw", "a file where the next member needs a folder")
        zf.writestr("hw/01_basics.ipynb", nbformat.writes(full))
        zf.writestr(f"{long_name}.ipynb", nbformat.writes(full))
    out = tmp_path / "out"
    autograde([flat, tmp_path / "class.zip"], out, ["01_basics"], course=course, workers=1)
    rows = {r["student"]: r for r in read_csv(out / "grades.csv")}
    assert set(rows) == {"broken", "stripped", "folder", "link", "inner", "evil", "hw", long_name[:64]}
    for student in ("broken", "stripped"):
        assert rows[student]["status"] == "graded" and float(rows[student]["score"]) == 8, rows[student]
        assert "配布版から復元しました" in rows[student]["reason"] and "がありません" not in rows[student]["reason"]
    for student, reason in (("folder", "フォルダです"), ("link", "見つかりません"), ("inner", "zip の中の zip"),
                            ("evil", "フォルダの外"), ("hw", "展開できませんでした: 同じ名前のファイルがあります"),
                            (long_name[:64], "展開できませんでした: 名前が長すぎます")):
        assert rows[student]["status"] == "invalid_notebook" and reason in rows[student]["reason"], rows[student]
    assert rows["evil"]["file"] == "class.zip/../../evil.ipynb" and not (tmp_path.parent / "evil.ipynb").exists()
    assert (out / "feedback" / "broken" / "01_basics.html").is_file()


def robustness_class(course: Path, root: Path, out_dir: Path, grader_port: int = 0) -> dict:
    """01_basics submissions, one per robustness case, spread over the three input layouts.
    Returns {student: (status, score or None, words expected in the reason)}."""
    full = read(course, "source", "01_basics")
    release = read(course, "release", "01_basics")
    nbgrader_dir, flat, zipped = root / "nbgrader" / "submitted", root / "flat", root / "zipped"
    cases = {}

    def add(student, nb, expect, where="flat"):
        if where == "nbgrader":
            write(nb, nbgrader_dir / student / "01_basics" / "01_basics.ipynb")
        else:
            write(nb, (flat if where == "flat" else zipped) / f"{student}.ipynb")
        cases[student] = expect

    add("full", full, ("graded", 8, []), "nbgrader")
    add("untouched", release, ("graded", 0, []), "nbgrader")
    add("loop", appended_to_cell(full, "softmax", "while True:\n    pass"), ("cell_timeout", 8, ["制限時間"]))
    add("stubborn", appended_to_cell(full, "softmax", "import time\nwhile True:\n    try:\n        time.sleep(0.1)\n"
                                                       "    except KeyboardInterrupt:\n        pass"),
        ("cell_timeout", 0, ["制限時間", "応答しなく"]))
    # Tensors allocated in a loop (torch.empty: quick even on a loaded machine,
    # since untouched pages still count against the limit).
    add("memory", appended_to_cell(full, "softmax", "def hog():\n    blocks = []\n    while True:\n"
                                                     "        blocks.append(torch.empty(256 * 2**20, dtype=torch.uint8))\n"
                                                     "hog()"),
        ("memory_limit", 8, ["メモリ"]))
    add("crash", appended_to_cell(full, "batch_loss", "import ctypes\nctypes.string_at(0)"),
        ("kernel_died", 4, ["カーネルが停止"]), "zipped")
    add("exit", appended_to_cell(full, "gradient_step", "import os\nos._exit(3)"), ("kernel_died", 5, ["カーネル"]))
    (flat / "broken.ipynb").write_text('{"cells": [{"cell_type": "code", ', encoding="utf-8")
    cases["broken"] = ("invalid_notebook", 0, ["JSON"])
    wrong = with_cell_source(full, "cross_entropy", "def cross_entropy(logits, targets):\n    return logits.sum(-1) * 0")
    # a wrong cross_entropy (so batch_loss and the training fail too) behind an edited test
    add("edited", with_cell_source(wrong, "test_cross_entropy", "print('OK')"), ("tampered", 4, ["書き換え"]))
    deleted = copy.deepcopy(full)
    del deleted.cells[cell_index(deleted, "test_softmax")]
    add("deleted", deleted, ("tampered", 8, ["削除"]), "zipped")
    duplicated = copy.deepcopy(full)
    i = cell_index(duplicated, "test_gradient_step")
    duplicated.cells.insert(i, copy.deepcopy(duplicated.cells[i]))
    duplicated.cells[i].id = "copied-cell"
    add("duplicated", duplicated, ("tampered", 8, ["2 個"]))
    retyped = with_cell_source(full, "softmax", "def softmax(logits, dim=-1):\n    return torch.exp(logits)")
    j = cell_index(retyped, "test_softmax")
    retyped.cells[j] = nbformat.v4.new_markdown_cell(retyped.cells[j].source, metadata=retyped.cells[j].metadata)
    add("retyped", retyped, ("tampered", 6, ["種類"]))
    unknown = copy.deepcopy(full)
    unknown.metadata[META_KEY]["assignment"] = "09_gpt"
    add("unknown", unknown, ("unknown_assignment", None, ["09_gpt"]))
    # Student code that looks for the hidden tests, the gradebook and the reference implementation,
    # of this class and of other classes graded on the machine: one already running (see the test)
    # and one that starts while this kernel runs (the marker tells the test to start it; a few
    # seconds at most are spent waiting for it).
    snoop = appended_to_cell(full, "softmax", f"""\
import glob, os, tempfile, time
LEFT_BEHIND = {[str(p) for p in left_behind_paths()]!r}
tmp = tempfile.gettempdir()
open({SNOOP_MARKER!r}, "w").close()
deadline = time.monotonic() + 4
while not glob.glob(tmp + "/bw-grade-late-*/course/gradebook.db") and time.monotonic() < deadline:
    time.sleep(0.1)
found = []
for pattern in [tmp + "/bw-grade-*/**/*.ipynb", tmp + "/bw-grade-*/**/gradebook.db", {str(out_dir)!r} + "/**/*",
                os.path.expanduser("~") + "/../**/gradebook.db"]:
    found += glob.glob(pattern, recursive=True)
for path in found:
    try:
        open(path, "ab").close()
        found.append("WROTE " + path)
    except OSError:
        pass
for path in LEFT_BEHIND:  # code for the grader's Python, or beside the hidden packages (checked by the test:
    try:                  # a write into the kernel's private temp folder would be harmless)
        open(path, "w").close()
    except OSError:
        pass
for fd in os.listdir("/proc/self/fd"):  # the grader's log, inherited as stderr
    target = os.readlink("/proc/self/fd/" + fd) if os.path.islink("/proc/self/fd/" + fd) else ""
    if target.startswith({str(out_dir)!r}):
        found.append("LOG " + target)
import socket  # a TCP port of the machine on 127.0.0.1 (other kernels listen there: their output)
try:
    socket.create_connection(("127.0.0.1", {grader_port}), timeout=2).close()
    found.append("TCP 127.0.0.1:{grader_port}")
except OSError:
    pass
if os.path.isdir({str(ROOT / ".git")!r}) and os.listdir({str(ROOT / ".git")!r}):  # the history of solutions/
    found.append("GIT")
try:
    import solutions.attention
    found.append("IMPORTED solutions")
except ImportError:
    pass
print("SNOOPED", len(found), sorted(set(found))[:5], sorted(k for k in os.environ if k.startswith("BW_")))""")
    add("snoop", snoop, ("graded", 8, []))
    with zipfile.ZipFile(root / "zipped.zip", "w") as zf:
        for path in sorted(zipped.iterdir()):
            zf.write(path, f"downloads/{path.name}")
    shutil.rmtree(zipped)
    return cases


def fake_grading_run(prefix: str = "bw-grade-") -> Path:
    """The temp folder of another class being graded on this machine (its course and gradebook)."""
    run = Path(tempfile.mkdtemp(prefix=prefix))
    (run / "course" / "source").mkdir(parents=True)
    (run / "course" / "gradebook.db").write_bytes(b"")
    return run


def start_late_run(stop: threading.Event, late_runs: list) -> None:
    """Once the snoop student's kernel has started its cell (its marker is in its working
    folder, in the grader's scratch folder), another class's grading starts."""
    pattern = os.path.join(tempfile.gettempdir(), "bw-grade-*", "**", SNOOP_MARKER)
    while not stop.is_set():
        if glob.glob(pattern, recursive=True):
            late_runs.append(fake_grading_run("bw-grade-late-"))
            return
        stop.wait(0.05)


@pytest.mark.slow
def test_every_robustness_case_gets_a_status_and_a_reason(tmp_path, course):
    out = tmp_path / "out"
    listener = socket.create_server(("127.0.0.1", 0))  # as a kernel or the grader listens on this machine
    cases = robustness_class(course, tmp_path / "in", out, grader_port=listener.getsockname()[1])
    inputs = [tmp_path / "in" / "nbgrader", tmp_path / "in" / "flat", tmp_path / "in" / "zipped.zip"]
    other_run = fake_grading_run()  # graded on this machine before the kernels start
    late_runs: list[Path] = []       # ... and one whose grading starts while they run
    stop = threading.Event()
    watcher = threading.Thread(target=start_late_run, args=(stop, late_runs), daemon=True)
    watcher.start()
    try:
        summary = autograde(inputs, out, ["01_basics"], course=course, workers=2, cell_timeout=8,
                            notebook_timeout=45, memory_limit="3G")
    finally:
        stop.set()
        watcher.join()
        listener.close()
        for run in [other_run, *late_runs]:
            shutil.rmtree(run)
    assert late_runs, "the snoop student's cell never started: the late run was not tested"
    left = [p for p in left_behind_paths() if p.exists()]
    for path in left:
        path.unlink()
    rows = {r["student"]: r for r in read_csv(out / "grades.csv")}
    assert set(rows) == set(cases)
    for student, (status, score, words) in cases.items():
        row = rows[student]
        assert row["status"] == status, (student, row)
        if score is None:
            assert row["score"] == "" and row["max_score"] == "", row
        else:
            assert float(row["score"]) == score, (student, row)
            assert float(row["max_score"]) == 10
        for word in words:
            assert word in row["reason"], (student, row)
    graded = {s for s, (status, *_) in cases.items() if status not in ("unknown_assignment",)}
    book = gradebook_scores(out / "gradebook.db", COURSE_ID)
    assert {s for s, _ in book} == graded  # failures are in the gradebook too, with zeros
    assert all(v[0] in (0, None) for v in book[("broken", "01_basics")].values())
    for student in ("full", "edited", "deleted", "crash"):
        assert hidden_free(out / "feedback" / student / "01_basics.html")
    snooped = nbformat.read(out / "autograded" / "snoop" / "01_basics" / "01_basics.ipynb", as_version=4)
    text = "".join(o.get("text", "") for o in snooped.cells[cell_index(snooped, "softmax")].outputs)
    assert "SNOOPED" in text and "IMPORTED solutions" not in text and "BW_" not in text.split("]")[-1]
    if summary.isolation == "namespaces":
        assert "SNOOPED 0 []" in text and not left, (text, left)
    assert summary.isolation == probe_isolation()


@pytest.mark.slow
def test_generated_half_correct_class_serial_equals_parallel(tmp_path, course):
    """Students who filled the first k answers get the points of the tests above answer k+1,
    and one worker or two give the same grades CSV and gradebook."""
    expected = {}
    for name in ("01_basics", "03_embeddings"):
        release, source = read(course, "release", name), read(course, "source", name)
        n = len([c for c in release.cells if c.metadata.get("nbgrader", {}).get("solution") and c.cell_type == "code"])
        for k in range(n + 1):
            nb, score = prefix_filled(release, source, k)
            write(nb, tmp_path / "class" / f"k{k}_{name}.ipynb")
            expected[(f"k{k}", name)] = score
        assert expected[(f"k{n}", name)] == max_auto_score(release) and expected[("k0", name)] == 0
    assert 0 < expected[("k2", "01_basics")] < expected[("k4", "01_basics")]
    results = {}
    for workers in (1, 2):
        out = tmp_path / f"out{workers}"
        autograde([tmp_path / "class"], out, ["01_basics", "03_embeddings"], course=course, workers=workers,
                  cell_timeout=120)
        rows = rows_by_student(out)
        assert {k: float(r["score"]) for k, r in rows.items()} == expected
        results[workers] = ((out / "grades.csv").read_text(encoding="utf-8-sig"),
                            gradebook_scores(out / "gradebook.db", COURSE_ID))
    assert results[1] == results[2]


STUBBORN = """import time
while True:
    try:
        time.sleep(0.1)
    except KeyboardInterrupt:
        pass"""


@pytest.mark.slow
def test_notebook_time_limit_kills_a_stuck_submission_and_the_class_goes_on(tmp_path, course):
    """With a cell limit longer than the notebook limit, the pool kills the worker and its
    kernel, records a timeout, and a fresh worker grades the next student."""
    full = read(course, "source", "01_basics")
    write(appended_to_cell(full, "softmax", STUBBORN), tmp_path / "in" / "a_stuck.ipynb")
    write(full, tmp_path / "in" / "b_fine.ipynb")
    daemon = "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(600)\n    os._exit(0)"
    write(appended_to_cell(full, "softmax", daemon), tmp_path / "in" / "c_daemon.ipynb")
    out = tmp_path / "out"
    autograde([tmp_path / "in"], out, ["01_basics"], course=course, workers=1, cell_timeout=300, notebook_timeout=15)
    rows = {r["student"]: r for r in read_csv(out / "grades.csv")}
    assert rows["a_stuck"]["status"] == "timeout" and float(rows["a_stuck"]["score"]) == 0
    assert "ノートブック全体の制限時間 (15 秒)" in rows["a_stuck"]["reason"]
    assert rows["b_fine"]["status"] == "graded" and float(rows["b_fine"]["score"]) == 8
    assert rows["c_daemon"]["status"] == "graded" and float(rows["c_daemon"]["score"]) == 8
    assert not (out / "feedback" / "a_stuck").exists()
    import psutil

    from autograder.grading_pool import JOB_MARK

    def marked(proc):  # by a run of this process (another test run may share the machine)
        try:
            return proc.environ().get(JOB_MARK, "").startswith(f"{os.getpid()}-")
        except psutil.Error:
            return False

    leftovers = [p for p in psutil.process_iter(["pid"]) if marked(p)]
    assert not leftovers, f"processes of graded notebooks are still running: {leftovers}"


def give_by_hand(db: Path, student: str, assignment: str, points: float) -> str:
    """What formgrader does when the teacher grades a written answer: its manual score."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{db}", COURSE_ID) as gb:
        grade = next(g for g in gb.find_submission(assignment, student).notebooks[0].grades if g.needs_manual_grade)
        grade.manual_score, grade.needs_manual_grade = points, False
        gb.db.commit()
        return grade.name


def test_a_later_run_adds_to_the_output_folder_and_keeps_scores_given_by_hand(tmp_path, course):
    full, untouched = read(course, "source", "01_basics"), read(course, "release", "01_basics")
    write(full, tmp_path / "first" / "aoki.ipynb")
    write(full, tmp_path / "first" / "ito.ipynb")
    out = tmp_path / "out"
    options = dict(course=course, workers=1)
    autograde([tmp_path / "first"], out, ["01_basics"], **options)
    written = give_by_hand(out / "gradebook.db", "aoki", "01_basics", 2.0)

    write(full, tmp_path / "late" / "ueda.ipynb")       # a late student
    write(untouched, tmp_path / "late" / "ito.ipynb")   # a re-submission replaces the first
    summary = autograde([tmp_path / "late"], out, ["01_basics"], **options)
    rows = rows_by_student(out)
    assert set(rows) == {("aoki", "01_basics"), ("ito", "01_basics"), ("ueda", "01_basics")}
    assert summary.kept == 1 and len(summary.rows) == 2
    assert float(rows[("aoki", "01_basics")]["score"]) == 10 and float(rows[("aoki", "01_basics")]["manual_pending"]) == 0
    assert float(rows[("ueda", "01_basics")]["score"]) == 8 and float(rows[("ito", "01_basics")]["score"]) == 0
    assert (out / "feedback" / "aoki" / "01_basics.html").is_file()
    scores = gradebook_scores(out / "gradebook.db", COURSE_ID)
    assert scores[("aoki", "01_basics")][written][1] == 2.0 and len(scores) == 3

    write(full, tmp_path / "again" / "aoki.ipynb")      # graded again: the score by hand stays, for review
    autograde([tmp_path / "again"], out, ["01_basics"], **options)
    aoki = rows_by_student(out)[("aoki", "01_basics")]
    assert float(aoki["score"]) == 10 and float(aoki["manual_pending"]) == 2 and written in aoki["reason"]

    autograde([tmp_path / "late"], out, ["01_basics"], fresh=True, **options)
    assert set(rows_by_student(out)) == {("ito", "01_basics"), ("ueda", "01_basics")}
    assert not (out / "feedback" / "aoki").exists()
    assert len(gradebook_scores(out / "gradebook.db", COURSE_ID)) == 2


def test_an_assignment_new_to_the_output_folder_joins_its_gradebook(tmp_path):
    """Grading 03 into the folder where 01 was graded: nbgrader registers 03 in the earlier gradebook."""
    from autograder.grading_outputs import gradebook_layout, load_previous
    from autograder.notebooks import build_course

    build_course(tmp_path / "then", ["01_basics"])
    build_course(tmp_path / "now", ["01_basics", "03_embeddings"])
    (tmp_path / "out").mkdir()
    shutil.copyfile(tmp_path / "then" / "gradebook.db", tmp_path / "out" / "gradebook.db")
    previous = load_previous(tmp_path / "out", tmp_path / "now", COURSE_ID, tmp_path / "aside")
    assert gradebook_layout(previous.gradebook, COURSE_ID) == gradebook_layout(tmp_path / "now" / "gradebook.db",
                                                                               COURSE_ID)
    assert set(gradebook_layout(tmp_path / "out" / "gradebook.db", COURSE_ID)) == {"01_basics"}  # not changed


def test_an_output_folder_of_another_course_is_refused_before_anything_is_removed(tmp_path, course):
    from nbgrader.api import Gradebook

    from autograder.grading import GradingError

    write(read(course, "source", "01_basics"), tmp_path / "in" / "aoki.ipynb")
    out = tmp_path / "out"
    autograde([tmp_path / "in"], out, ["01_basics"], course=course, workers=1)
    with Gradebook(f"sqlite:///{out / 'gradebook.db'}", COURSE_ID) as gb:  # another version of the course
        cell = gb.find_assignment("01_basics").notebooks[0].grade_cells[0]
        cell.max_score += 1
        gb.db.commit()
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    with pytest.raises(GradingError, match="今回のコースと違います.*--fresh"):
        autograde([tmp_path / "in"], out, ["01_basics"], course=course, workers=1)
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before


def test_the_output_folder_must_not_overlap_the_course_or_the_submissions(tmp_path, course):
    from autograder.grading import GradingError, UsageError

    own = tmp_path / "course"
    shutil.copytree(course, own)
    write(read(own, "source", "01_basics"), own / "submitted" / "aoki" / "01_basics" / "01_basics.ipynb")
    before = sorted(p.relative_to(own) for p in own.rglob("*"))
    for out, inputs in ((own, [own / "submitted"]), (own / "submitted" / "grades", [own / "submitted"])):
        with pytest.raises(GradingError, match="別のフォルダを --out"):
            autograde(inputs, out, ["01_basics"], course=own, workers=1)
    assert sorted(p.relative_to(own) for p in own.rglob("*")) == before
    with pytest.raises(GradingError, match="--notebook-timeout は 1 秒以上"):
        autograde([own / "submitted"], tmp_path / "out", course=own, notebook_timeout=0)
    with pytest.raises(UsageError, match="--memory-limit: メモリの大きさ 'abc'"):
        autograde([own / "submitted"], tmp_path / "out", course=own, memory_limit="abc")
    with pytest.raises(UsageError, match=r"--assignment: '99_nope' は選べません \('01_basics', '02_tokenization'"):
        autograde([own / "submitted"], tmp_path / "out", ["99_nope"], course=own)


def test_cuda_grading_needs_a_gpu(tmp_path, course):
    import torch

    from autograder.grading import GradingError

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(GradingError, match="GPU"):
        autograde([tmp_path], tmp_path / "out", course=course, device="cuda")
