"""A class's submissions, in any accepted layout, as one notebook per (student, assignment).

Accepted inputs (folders or zip files, several at once):

- nbgrader's layout ``submitted/<student>/<assignment>/<assignment>.ipynb``
  (the folder given may be the course folder, ``submitted/`` or its content);
- a flat folder (or zip) of ``<student>.ipynb`` files downloaded from Colab
  (of several files for one student and assignment, the newest is graded);
  also ``<student>/<anything>.ipynb``. The assignment comes from the notebook
  metadata that the exercises carry (``bert_workshop.assignment``), else from
  an assignment name in the file name, else from ``--assignment``.

Each submission is checked against the released notebook of its assignment.
Tampering is reported in Japanese (nbgrader repairs it while grading): a
read-only or test cell that was edited (restored from the source), deleted
(put back here, then restored), duplicated (the last copy is graded) or
turned into another cell type (turned back); nbgrader metadata that an editor
dropped or broke is restored from the release. Notebooks that are not JSON,
files that cannot be read, zips inside the submissions (not extracted) and zip
members named outside their folder, or that belong to no known assignment, get
a status and a reason instead of a grade: nothing is left out without a word.
"""
from __future__ import annotations

import copy
import errno
import json
import os
import re
import shutil
import time
import unicodedata
import warnings
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import nbformat

from .cli_messages import os_problem
from .notebooks import META_KEY

MAX_NOTEBOOK_BYTES = 64 * 2**20
MAX_ZIP_BYTES = 2 * 2**30
# Errors of writing one zip member that its name causes: that member is left out, the rest
# extracted. Others (a full disk, a read-only folder) are the grader's and stop the run.
MEMBER_ERRORS = (errno.EEXIST, errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG)

# Statuses a submission can get before it reaches nbgrader.
INVALID = "invalid_notebook"
UNKNOWN_ASSIGNMENT = "unknown_assignment"
DUPLICATE = "duplicate_submission"

INNER_ZIP = ("フォルダや zip の中の zip は展開しません (展開してから渡すか、"
             "この zip を autograde の引数に直接指定してください)")
BROKEN_ZIP = "zip として読めません (壊れているか、途中で切れています。もう一度ダウンロードしてください)"


@dataclass
class Submission:
    student: str
    assignment: str | None
    source: str                      # where it came from, for the report
    path: Path | None = None         # the original file
    notebook: Path | None = None     # the checked notebook handed to nbgrader
    status: str | None = None        # set when it cannot be graded
    reason: str = ""
    notes: list[str] = field(default_factory=list)  # tampering and repairs
    tampered: bool = False
    timestamp: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.student, self.assignment or "")

    @property
    def gradable(self) -> bool:
        return self.status is None


def clean_id(text: str, fallback: str = "unknown") -> str:
    """A student id usable as a folder name (letters of any script, digits, '.', '_', '-')."""
    text = unicodedata.normalize("NFKC", text).strip()
    text = re.sub(r"[^\w.-]+", "_", text, flags=re.UNICODE).strip("._-")
    return text[:64] or fallback


# ------------------------------------------------------------------ finding files


def safe_extract(archive: Path, target: Path) -> list[tuple[str, str]]:
    """Extract a zip without letting names escape `target` (and without huge expansions).
    Returns the members left out, each with why (in Japanese); folders, macOS
    metadata and hidden files are left out without a word. Raises zipfile.BadZipFile."""
    target.mkdir(parents=True, exist_ok=True)
    total, skipped = 0, []
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            name = PurePosixPath(info.filename.replace("\\", "/"))
            if info.is_dir():
                continue
            if name.is_absolute() or ".." in name.parts:
                skipped.append((info.filename, "名前が展開先のフォルダの外を指しているので展開しませんでした"))
                continue
            if "__MACOSX" in name.parts or any(p.startswith(".") for p in name.parts):
                continue
            if total + info.file_size > MAX_ZIP_BYTES:
                skipped.append((info.filename, f"展開後のサイズが大きすぎるので展開しませんでした "
                                               f"(zip 1 つで {MAX_ZIP_BYTES // 2**30} GiB まで)"))
                continue
            total += info.file_size
            dest = target.joinpath(*name.parts)
            try:
                dest.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(dest, "wb") as out:
                    shutil.copyfileobj(src, out)
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as e:
                remove_partial(dest)  # a damaged member, an unsupported compression, a password
                skipped.append((info.filename, f"zip から取り出せません (壊れているか暗号化されています): {e}"))
                continue
            except OSError as e:  # a file and a folder of one name ("hw", "hw/x.ipynb"), a name too long
                remove_partial(dest)
                if e.errno not in MEMBER_ERRORS:  # a full disk, a read-only folder: the grader's, not the student's
                    raise
                skipped.append((info.filename, f"展開できませんでした: {os_problem(e)}"))
                continue
            try:  # keep the member's time: the newest of two copies is the one graded
                stamp = time.mktime(info.date_time + (0, 0, -1))
                os.utime(dest, (stamp, stamp))
            except (OverflowError, ValueError, OSError):
                pass
    return skipped


def one_level_down(left_out: list[tuple[PurePosixPath, str, str]]) -> list[tuple[PurePosixPath, str, str]]:
    """Left-out members' places seen from the folder one level down (their first part dropped)."""
    return [(PurePosixPath(*rel.parts[1:]), source, why) for rel, source, why in left_out]


def remove_partial(dest: Path) -> None:
    """Remove what a failed extraction left at `dest`, if it can (a folder or a name
    too long to use is left as it is)."""
    try:
        if not dest.is_dir():
            dest.unlink(missing_ok=True)
    except OSError:
        pass


def submission_files(folder: Path) -> list[tuple[PurePosixPath, Path]]:
    """(relative path, file) of every notebook and zip under `folder`, checkpoints left out."""
    if not os.path.isdir(folder):  # never made: all its members were left out (a name too long)
        return []
    found = []
    for path in sorted([*folder.rglob("*.ipynb"), *folder.rglob("*.zip")]):
        rel = PurePosixPath(path.relative_to(folder).as_posix())
        if any(part.startswith(".") or part == "__MACOSX" for part in rel.parts):
            continue
        found.append((rel, path))
    return found


def mtime(path: Path | None) -> float:
    try:
        return path.stat().st_mtime if path is not None else 0.0
    except OSError:
        return 0.0


def readable_timestamp(text: str) -> str | None:
    """The text of a timestamp.txt if nbgrader can parse it, else None."""
    if not text:
        return None
    from nbgrader.utils import parse_utc

    try:
        parse_utc(text)
    except Exception:
        return None
    return text


def submission_root(folder: Path) -> Path:
    """A course folder or its submitted/ folder -> the folder with the students.
    (os.path: a name too long for the disk is no folder, where pathlib would raise.)"""
    return folder / "submitted" if os.path.isdir(folder / "submitted") else folder


# ------------------------------------------------------------------ reading


def read_notebook(path: Path):
    """(notebook, None) or (None, a reason in Japanese)."""
    try:
        size = path.stat().st_size
        if size > MAX_NOTEBOOK_BYTES:
            return None, f"ファイルが大きすぎます ({size // 2**20} MiB)"
        raw = path.read_bytes()
    except OSError as e:  # a folder named *.ipynb, a broken link, no permission
        return None, f"読めません: {os_problem(e)}"
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None, "UTF-8 のテキストではありません (ノートブックではないファイル?)"
    if not text.strip():
        return None, "空のファイルです"
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as e:  # a cut download, a hand edit: say where
        return None, f"JSON として読めません ({e.lineno} 行 {e.colno} 文字目: {e.msg})"
    if not isinstance(parsed, dict) or not {"cells", "worksheets"} & parsed.keys():  # nbformat 4, or 3
        return None, "ノートブックではありません (JSON の最上位に cells がありません)"
    problem = shape_problem(parsed)
    if problem:
        return None, f"ノートブックの形式が正しくありません: {problem}"
    try:
        with warnings.catch_warnings():  # duplicate cell ids are repaired with a warning
            warnings.simplefilter("ignore")
            nb = nbformat.reads(text, as_version=4)
    except Exception as e:  # nbformat raises ValidationError, conversion errors, ...
        message = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        return None, f"ノートブックとして読めません: {message}"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            nbformat.validate(nb)
    except nbformat.ValidationError:
        try:
            _, nb = nbformat.validator.normalize(nb)
            nb = nbformat.from_dict(nb)
            nbformat.validate(nb)
        except Exception as e:
            return None, f"ノートブックの形式が正しくありません: {schema_problem(e)}"
    if not isinstance(nb.get("cells"), list):
        return None, "セルがありません"
    return nb, None


CELL_TYPES = ("code", "markdown", "raw")


def is_text(value) -> bool:
    return isinstance(value, str) or isinstance(value, list) and all(isinstance(line, str) for line in value)


def shape_problem(parsed: dict) -> str | None:
    """Damage to a notebook that nbformat fails on without saying where, as
    'place: what is wrong' (cells numbered from 1, as in the reports)."""
    version = parsed.get("nbformat")
    if version == 3 and "worksheets" in parsed:  # the old format: nbformat converts it
        return None
    if version != 4:
        return f"ノートブック: nbformat (形式の版) が {version!r} です (cells のあるノートブックは 4)"
    if not isinstance(parsed.get("cells"), list):
        return "ノートブック: cells がリストではありません"
    if not isinstance(parsed.get("metadata"), dict):
        return "ノートブック: metadata がないか、オブジェクトではありません"
    for number, cell in enumerate(parsed["cells"], 1):
        if not isinstance(cell, dict):
            problem = f"JSON のオブジェクトではありません ({json.dumps(cell, ensure_ascii=False)[:40]})"
        elif cell.get("cell_type") not in CELL_TYPES:
            problem = f"cell_type {cell.get('cell_type')!r} は使えません (code / markdown / raw のどれか)"
        elif not isinstance(cell.get("metadata"), dict):
            problem = "metadata がないか、オブジェクトではありません"
        elif not is_text(cell.get("source")):
            problem = "source が文字列 (か文字列のリスト) ではありません"
        elif cell["cell_type"] == "code" and not (isinstance(cell.get("outputs"), list)
                                                  and all(isinstance(o, dict) for o in cell["outputs"])):
            problem = "outputs がないか、出力 (オブジェクト) のリストではありません"
        else:
            continue
        return f"セル {number}: {problem}"
    return None


def schema_problem(e: Exception) -> str:
    """nbformat's validation error as 'place: what is wrong (its own words)'."""
    message = (getattr(e, "message", None) or str(e) or type(e).__name__).splitlines()[0][:120]
    path = list(getattr(e, "absolute_path", None) or [])
    where = "ノートブック"
    if len(path) > 1 and path[0] == "cells" and isinstance(path[1], int):
        where, path = f"セル {path[1] + 1}", path[2:]
    field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
    where += f" の {field}" if field else ""
    missing = re.match(r"'(.+?)' is a required property", message)
    if getattr(e, "validator", None) == "required" and missing:
        return f"{where}: {missing[1]} がありません ({message})"
    if getattr(e, "validator", None) == "additionalProperties":
        return f"{where}: 知らないフィールドがあります ({message})"
    return f"{where}: 値が正しくありません ({message})"


def assignment_from_metadata(nb) -> str | None:
    meta = nb.metadata.get(META_KEY) if nb is not None else None
    value = meta.get("assignment") if isinstance(meta, dict) else None
    return value if isinstance(value, str) else None


def assignment_in_name(stem: str, known: set[str]) -> str | None:
    for name in sorted(known, key=len, reverse=True):
        if name in stem:
            return name
    return None


# ------------------------------------------------------------------ checks against the release


def grade_id(cell) -> str | None:
    meta = cell.get("metadata", {}).get("nbgrader")
    value = meta.get("grade_id") if isinstance(meta, dict) else None
    return value if isinstance(value, str) and value else None


def is_locked(meta: dict) -> bool:
    return bool(meta.get("locked") or (meta.get("grade") and not meta.get("solution")))


def normalised_source(source: str) -> str:
    return source.replace("\r\n", "\n").rstrip()


def grading_role(meta) -> tuple:
    """What nbgrader grades by (checksums and bookkeeping fields left out)."""
    if not isinstance(meta, dict):
        return (meta,)
    points = meta.get("points")
    try:
        points = float(points) if points is not None else None
    except (TypeError, ValueError):
        pass
    return (bool(meta.get("grade")), bool(meta.get("solution")), bool(meta.get("locked")),
            bool(meta.get("task")), points)


def first_code_line(source: str) -> str | None:
    for line in source.splitlines():
        if line.startswith(("def ", "class ")):
            return line.rstrip()
    return None


def restore_missing_metadata(nb, release, notes: list[str]) -> None:
    """Cells without usable nbgrader metadata (some editors drop it, a hand edit can
    leave a string) get it back when they are recognisably a cell of the release
    that the notebook lacks: same cell id, same source of a read-only cell, or the
    same def/class line of an answer cell. Others lose what is left of it (nbgrader
    would stop on it): they are ordinary cells."""
    by_id = {c.get("id"): c for c in release.cells if grade_id(c)}
    by_source = {normalised_source(c.source): c for c in release.cells
                 if grade_id(c) and is_locked(c.metadata["nbgrader"])}
    by_def = {first_code_line(c.source): c for c in release.cells
              if grade_id(c) and c.metadata["nbgrader"].get("solution") and c.cell_type == "code"}
    used, restored = {gid for c in nb.cells if (gid := grade_id(c))}, 0
    for cell in nb.cells:
        if grade_id(cell):
            continue
        match = by_id.get(cell.get("id")) or by_source.get(normalised_source(cell.source))
        if match is None and cell.cell_type == "code":
            line = first_code_line(cell.source)
            match = by_def.get(line) if line else None
        if match is not None and grade_id(match) not in used:
            used.add(grade_id(match))
            cell.metadata["nbgrader"] = copy.deepcopy(match.metadata["nbgrader"])
            restored += 1
        else:
            cell.metadata.pop("nbgrader", None)
    if restored:
        notes.append(f"{restored} 個のセルで nbgrader のメタデータがない (か壊れている) ので、配布版から復元しました")


def check_against_release(nb, release, source=None) -> tuple[list[str], bool]:
    """Report tampering and put deleted read-only/test cells back (nbgrader then
    restores their content, hidden tests included, from the source).
    A read-only cell equal to its instructor (source) version is not tampering:
    the instructor notebooks themselves can be graded. Returns (notes, tampered)."""
    notes: list[str] = []
    restore_missing_metadata(nb, release, notes)
    tampered = False
    release_cells = [(grade_id(c), c) for c in release.cells if grade_id(c)]
    release_by_id = dict(release_cells)
    instructor = {grade_id(c): normalised_source(c.source) for c in (source.cells if source else []) if grade_id(c)}

    counts = Counter(gid for c in nb.cells if (gid := grade_id(c)))
    for gid, n in sorted(counts.items()):
        if n > 1:
            tampered = True
            notes.append(f"セル {gid} が {n} 個あります (複製されたセル)。最後のものを採点します")
            # As nbgrader's DeduplicateIds, but without leaving an empty metadata dict
            # behind (which makes nbgrader's OverwriteCells fail).
            copies = [c for c in nb.cells if grade_id(c) == gid]
            for cell in copies[:-1]:
                del cell.metadata["nbgrader"]
    unknown = sorted(gid for gid in counts if gid not in release_by_id)
    if unknown:
        tampered = True
        notes.append(f"配布版にないセル ID があります ({', '.join(unknown)})。そのセルは採点に使いません")

    present, metadata_changed = {}, []
    for cell in nb.cells:
        gid = grade_id(cell)
        if gid in release_by_id:
            present[gid] = cell  # the last copy, as nbgrader grades it
            original = release_by_id[gid].metadata["nbgrader"]
            if cell.metadata["nbgrader"] != original:
                # points, locking or the cell's role edited (or the schema broken): back to the release's
                if grading_role(cell.metadata["nbgrader"]) != grading_role(original):
                    metadata_changed.append(gid)
                cell.metadata["nbgrader"] = copy.deepcopy(original)
        elif gid is not None:
            del cell.metadata["nbgrader"]  # an id nbgrader does not know: an ordinary cell
    if metadata_changed:
        tampered = True
        notes.append(f"セル {', '.join(metadata_changed)} の採点用メタデータが変更されていたので戻しました")
    for gid, original in release_cells:
        cell = present.get(gid)
        if cell is None:
            continue
        meta = original.metadata["nbgrader"]
        what = "テストセル" if meta.get("grade") and not meta.get("solution") else (
            "読み取り専用のセル" if is_locked(meta) else "答えのセル")
        if cell.cell_type != original.cell_type:
            tampered = True
            notes.append(f"{what} {gid} の種類が {original.cell_type} から {cell.cell_type} に変えられていたので戻しました")
        elif is_locked(meta) and normalised_source(cell.source) not in (
                normalised_source(original.source), instructor.get(gid)):
            tampered = True
            notes.append(f"{what} {gid} が書き換えられていたので元に戻しました")

    missing = [gid for gid, original in release_cells
               if gid not in present and (is_locked(original.metadata["nbgrader"])
                                          or original.metadata["nbgrader"].get("grade"))]
    if missing:
        tampered = True
        reinsert_cells(nb, release, missing)
        notes.append(f"削除されていたセル ({', '.join(missing)}) を元に戻しました")
    answers_gone = [gid for gid, _ in release_cells if gid not in present and gid not in missing]
    if answers_gone:  # the student's own loss, not tampering: said so that the teacher sees why
        notes.append(f"答えのセル ({', '.join(answers_gone)}) がありません (削除されたか、セルの ID が消えています)")
    return notes, tampered


def reinsert_cells(nb, release, missing: list[str]) -> None:
    """Put each missing cell after the nearest earlier release cell that is present."""
    order = [grade_id(c) for c in release.cells if grade_id(c)]
    release_by_id = {grade_id(c): c for c in release.cells if grade_id(c)}
    for gid in missing:
        cell = copy.deepcopy(release_by_id[gid])
        position = 0
        for earlier in reversed(order[:order.index(gid)]):
            indices = [i for i, c in enumerate(nb.cells) if grade_id(c) == earlier]
            if indices:
                position = indices[-1] + 1
                break
        nb.cells.insert(position, cell)


# ------------------------------------------------------------------ collecting


class Collector:
    def __init__(self, known: set[str], inbox: Path, releases: dict, assignment_hint: str | None = None,
                 sources: dict | None = None):
        self.known = known
        self.inbox = inbox
        self.releases = releases  # assignment -> release notebook
        self.sources = sources or {}  # assignment -> instructor notebook
        self.hint = assignment_hint
        self.submissions: list[Submission] = []
        self.parsed: dict[int, object] = {}
        self.extracted = 0

    def add_input(self, path: Path) -> None:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: 見つかりません")
        if path.is_file() and path.suffix.lower() == ".zip" and not zipfile.is_zipfile(path):
            self.add_file(path, PurePosixPath(path.name), path.name, problem=BROKEN_ZIP)  # not a notebook either
        elif path.is_file() and zipfile.is_zipfile(path):
            self.extracted += 1
            folder = self.inbox / "unzipped" / f"{self.extracted:02d}-{clean_id(path.stem)}"
            try:
                skipped = safe_extract(path, folder)
            except zipfile.BadZipFile as e:
                return self.add_file(path, PurePosixPath(path.name), path.name, problem=f"zip として読めません (壊れています: {e})")
            left_out = []  # reported as the student's submission, never dropped
            for member, why in skipped:
                name = PurePosixPath(member.replace("\\", "/"))
                if not name.name.endswith((".ipynb", ".zip")):
                    continue
                if name.is_absolute() or ".." in name.parts:  # no place in the submissions: its name only
                    self.add_file(path, PurePosixPath(name.name), f"{path.name}/{member}", problem=why)
                else:
                    left_out.append((name, f"{path.name}/{member}", why))
            self.add_folder(folder, label=path.name, left_out=left_out)
        elif path.is_file():
            self.add_file(path, PurePosixPath(path.name), label=path.name)
        else:
            self.add_folder(path, label=path.name)

    def add_folder(self, folder: Path, label: str, left_out: list[tuple[PurePosixPath, str, str]] = ()) -> None:
        """Every submission under `folder`. `left_out`: (path inside `folder`, label, why)
        of the zip members that were not extracted there; each is reported as the
        submission its place names, as it would have been had it been extracted."""
        root = submission_root(folder)
        if root != folder:  # only submitted/ is read; a member left out elsewhere keeps its name
            for rel, source, why in left_out:
                if rel.parts[0] != root.name:
                    self.add_file(folder / rel, PurePosixPath(rel.name), source, problem=why)
            left_out = one_level_down([item for item in left_out if item[0].parts[0] == root.name])
        files = submission_files(root)
        places = [rel for rel, _ in files] + [rel for rel, _, _ in left_out]
        # A zip often wraps everything in one folder: look inside it.
        tops = {rel.parts[0] for rel in places}
        if len(tops) == 1 and all(len(rel.parts) > 1 for rel in places):
            inner = root / next(iter(tops))
            if os.path.isdir(inner / "submitted") or all(len(rel.parts) in (2, 4) for rel in places):
                return self.add_folder(inner, f"{label}/{inner.name}", one_level_down(left_out))
        for rel, path in files:
            self.add_file(path, rel, label=f"{label}/{rel}", problem=INNER_ZIP if rel.suffix == ".zip" else None)
        for rel, source, why in left_out:  # `root / rel` was never written: only its place is used
            self.add_file(root / rel, rel, source, problem=why)

    def add_file(self, path: Path, rel: PurePosixPath, label: str, problem: str | None = None) -> None:
        """One submission: the notebook at `path`, or a file that cannot be one (`problem`),
        named by `rel` (its place in the submissions)."""
        nb, problem = (None, problem) if problem else read_notebook(path)
        parts = rel.parts
        timestamp = None
        if len(parts) >= 3:  # nbgrader: <student>/<assignment>/<notebook>.ipynb
            student, folder_assignment = clean_id(parts[-3]), parts[-2]
            assignment = folder_assignment
            stamp = path.parent / "timestamp.txt"  # os.path: False, not an error, for a name too long
            if os.path.isfile(stamp):
                timestamp = readable_timestamp(stamp.read_text(encoding="utf-8", errors="replace").strip())
            if rel.stem != assignment and os.path.exists(path.parent / f"{assignment}.ipynb"):
                return  # another notebook (or a zip) next to the assignment's own one
        else:
            stem = rel.stem
            named = assignment_in_name(stem, self.known)
            meta = assignment_from_metadata(nb)
            assignment = meta or named or self.hint
            if len(parts) == 2:
                student = clean_id(parts[0])
            else:
                rest = stem.replace(named, " ") if named else stem
                rest = re.sub(r"\(\d+\)|\bcopy\b|のコピー", " ", rest)
                student = clean_id(rest)
        submission = Submission(student, assignment, label, path=path, timestamp=timestamp)
        if problem:
            submission.status, submission.reason = INVALID, problem
        elif assignment is None:
            submission.status = UNKNOWN_ASSIGNMENT
            submission.reason = ("課題を判定できません (ノートブックのメタデータにもファイル名にも課題名がありません)。"
                                 " --default-assignment で指定してください")
        elif assignment not in self.known:
            submission.status = UNKNOWN_ASSIGNMENT
            submission.reason = f"未知の課題 {assignment!r} です (採点できる課題: {', '.join(sorted(self.known))})"
        else:
            self.parsed[id(submission)] = nb  # checked in finish(), once duplicates are known
        self.submissions.append(submission)

    def prepare(self, submission: Submission, nb) -> None:
        meta = assignment_from_metadata(nb)
        if meta and meta != submission.assignment:
            submission.notes.append(f"ノートブックのメタデータは課題 {meta} ですが、{submission.assignment} として採点します")
        notes, tampered = check_against_release(nb, self.releases[submission.assignment],
                                                self.sources.get(submission.assignment))
        submission.notes += notes
        submission.tampered = tampered
        nb.metadata.setdefault(META_KEY, {})
        target = self.inbox / "checked" / submission.student / submission.assignment / f"{submission.assignment}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, str(target))
        submission.notebook = target

    def finish(self) -> list[Submission]:
        """Check and write one notebook per (student, assignment); other copies get a status."""
        groups: dict[tuple[str, str], list[Submission]] = {}
        for submission in self.submissions:
            if submission.assignment in self.known:
                groups.setdefault(submission.key, []).append(submission)
        for group in groups.values():
            # the newest gradable file (e.g. "name (1).ipynb", downloaded again later)
            gradable = [s for s in group if s.gradable]
            chosen = max(gradable, key=lambda s: (mtime(s.path), s.source)) if gradable else group[0]
            for submission in group:
                if submission is chosen:
                    continue
                extra = f" (このファイル: {submission.reason})" if submission.reason else ""
                submission.status = DUPLICATE
                submission.reason = f"同じ受講者・課題の提出が複数あります: {chosen.source} を採点しました{extra}"
            if chosen.gradable:
                self.prepare(chosen, self.parsed.pop(id(chosen)))
        self.parsed.clear()
        return sorted(self.submissions, key=lambda s: (s.student, s.assignment or "", s.source))


def collect_submissions(inputs: list[Path], known: set[str], inbox: Path, releases: dict,
                        assignment_hint: str | None = None, sources: dict | None = None) -> list[Submission]:
    collector = Collector(known, inbox, releases, assignment_hint, sources)
    for path in inputs:
        collector.add_input(Path(path))
    return collector.finish()
