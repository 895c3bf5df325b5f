"""The common record form (one page a line of JSONL) and its reader/writer.

Every data source of the workshop (demo corpus, livedoor, SHINRA) ends up as
``Record``s, and every step after that (tokenize, train, evaluate) reads them.
"""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import gzip
import io
import json
import os
import random
import tempfile
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Iterable, Iterator

GZIP_MAGIC = b"\x1f\x8b"
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
OS_ERROR_REASONS = {errno.ENOENT: "見つかりません", errno.EISDIR: "フォルダです (ファイルを指定してください)",
                    errno.ENOTDIR: "途中にフォルダでないものがあります", errno.EEXIST: "同じ名前のファイルがあります",
                    errno.EACCES: "アクセスする権限がありません", errno.ENOSPC: "ディスクがいっぱいです",
                    errno.ENAMETOOLONG: "名前が長すぎます"}


@dataclass
class Record:
    """One page: an id, a title, the body text and its labels (empty if unknown)."""

    page_id: str
    title: str
    text: str
    labels: list[str] = field(default_factory=list)


class DataError(ValueError):
    """A problem in an input file, located as ``file:line`` (and the field, if any).
    ``cut``: the line is the file's last and has no line end (the file was cut short there)."""

    def __init__(self, message: str, *, path=None, line: int | None = None, field: str | None = None,
                 cut: bool = False):
        self.path = None if path is None else str(path)
        self.cut = cut
        self.line = line
        self.field = field
        self.message = message
        super().__init__(_locate(self.path, line) + message)


def _locate(path: str | None, line: int | None) -> str:
    """The ``file:line: `` prefix of an error message."""
    if path is None:
        return ""
    return f"{path}:{line}: " if line is not None else f"{path}: "


def describe_os_error(error: OSError) -> str:
    """Why a file could not be opened or written, in Japanese for the common cases."""
    return OS_ERROR_REASONS.get(error.errno, error.strerror or str(error))


# ---------------------------------------------------------------- reading lines


def is_gzip(path) -> bool:
    """True when the file starts with the gzip magic bytes (whatever its name)."""
    with open(path, "rb") as f:
        return f.read(2) == GZIP_MAGIC


def iter_lines(path) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, line)`` from a text or gzip file, line numbers from 1.

    Each line keeps its trailing newline, so a caller can tell that the last
    line was cut short. Bytes that are not UTF-8, and a gzip stream that is
    cut or corrupt, become a ``DataError`` after every complete line before it.
    """
    for line_number, line in iter_lines_or_errors(path):
        if isinstance(line, DataError):
            raise line
        yield line_number, line


def iter_lines_or_errors(path) -> Iterator[tuple[int, str | DataError]]:
    """As ``iter_lines``, but a line that is not UTF-8 comes as its ``DataError``
    and the reading goes on: one bad byte does not lose the rest of the file."""
    f = open_lines(path)
    line_number = 0
    with f:
        try:
            for line_number, raw in enumerate(f, start=1):
                try:
                    line = _decode_line(raw, path, line_number)
                except DataError as e:
                    line = e
                yield line_number, line
        except (EOFError, gzip.BadGzipFile, zlib.error) as e:
            raise DataError(
                f"gzip が途中で切れているか壊れています（{e}）", path=path, line=line_number + 1
            ) from None


def open_lines(path) -> IO[bytes]:
    """The file as bytes (gunzipped if gzip); a file that cannot be read at all is a ``DataError``
    (its ``message`` says why, for a reader that reports it its own way: the scorer)."""
    try:
        with open(path, "rb") as f:
            start = f.read(2)
        if start in UTF16_BOMS:  # every line would fail alike: said once, for the whole file
            raise DataError("UTF-16 で保存されています。UTF-8 で保存し直してください", path=path)
        return gzip.open(path, "rb") if start == GZIP_MAGIC else open(path, "rb")
    except OSError as e:
        raise DataError(f"ファイルを開けません: {describe_os_error(e)}", path=path) from None


def count_nonblank_lines(path) -> int | None:
    """How many lines of a text or gzip file hold something (a progress bar's
    total). None when the file cannot be read to the end: reading it for real
    reports why."""
    try:
        with (gzip.open if is_gzip(path) else open)(path, "rb") as f:
            return sum(1 for raw in f if raw.strip())
    except (OSError, EOFError, zlib.error):
        return None


def _decode_line(raw: bytes, path, line_number: int) -> str:
    """Decode one line as UTF-8 (a BOM at the start of the file is dropped)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        cut = not raw.endswith(b"\n")  # a file cut inside a multi-byte character ends this way
        raise DataError(f"{'行が途中で切れています。' if cut else ''}UTF-8 として読めません（{e.start + 1} バイト目）",
                        path=path, line=line_number, cut=cut) from None
    return text.removeprefix("\ufeff") if line_number == 1 else text


def parse_json_object(line: str, path, line_number: int) -> dict:
    """Parse one JSONL line into a dict, or raise a ``DataError`` that says why not."""
    try:
        value = json.loads(line.rstrip("\r\n"))  # the line's own end is not part of its JSON
    except json.JSONDecodeError as e:
        cut = "行が途中で切れています。" if not line.endswith("\n") else ""
        raise DataError(
            f"{cut}JSON として読めません（{e.colno} 文字目: {e.msg.removesuffix(' at')}）", path=path, line=line_number
        ) from None
    if not isinstance(value, dict):
        raise DataError(
            f"1 行に 1 つの JSON オブジェクトが必要です（{json_type_name(value)}が入っています）",
            path=path,
            line=line_number,
        )
    return value


def json_type_name(value) -> str:
    """The JSON name of a value's type, for error messages."""
    if value is None:
        return "null 値"
    names = ((bool, "真偽値"), (str, "文字列"), ((int, float), "数値"), (list, "リスト"), (dict, "オブジェクト"))
    for kind, name in names:  # bool first: True is also an int
        if isinstance(value, kind):
            return name
    return type(value).__name__


# ---------------------------------------------------------------- records


def get_string(obj: dict, key: str, path, line_number: int, *, required=True, allow_empty=False) -> str:
    """``obj[key]`` checked to be a (non-empty) string; absent and optional -> ''."""
    if key not in obj or (obj[key] is None and not required):
        if required:
            raise DataError(f"'{key}' がありません", path=path, line=line_number, field=key)
        return ""
    value = obj[key]
    if not isinstance(value, str):
        raise DataError(
            f"'{key}' は文字列でなければなりません（{json_type_name(value)}が入っています）",
            path=path,
            line=line_number,
            field=key,
        )
    if not allow_empty and not value.strip():
        raise DataError(f"'{key}' が空です", path=path, line=line_number, field=key)
    return value


def get_labels(obj: dict, path, line_number: int, *, required: bool) -> list[str]:
    """``obj['labels']`` checked to be a list of non-empty strings (absent -> [])."""
    labels = obj.get("labels") or []
    if not isinstance(labels, list) or not all(isinstance(x, str) and x for x in labels):
        raise DataError(
            "'labels' は空でない文字列のリストでなければなりません", path=path, line=line_number, field="labels"
        )
    if required and not labels:
        what = "が空です" if "labels" in obj and obj["labels"] is not None else "がありません"
        raise DataError(
            f"'labels' {what}（ラベル付きのデータが必要です）", path=path, line=line_number, field="labels"
        )
    return labels


def get_page_id(obj: dict, path, line_number: int) -> str:
    """``obj['page_id']``: a non-empty string, or an integer taken as its digits (as the scorer does)."""
    value = obj.get("page_id")
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return get_string(obj, "page_id", path, line_number)


def record_from_json(obj: dict, path, line_number: int, *, require_labels=False, ignore_labels=False) -> Record:
    """Check one parsed line field by field and build its ``Record``.

    ``ignore_labels``: a page to predict, whose labels are neither read nor checked.
    """
    return Record(
        page_id=get_page_id(obj, path, line_number),
        title=get_string(obj, "title", path, line_number, required=False, allow_empty=True),
        text=get_string(obj, "text", path, line_number),
        labels=[] if ignore_labels else get_labels(obj, path, line_number, required=require_labels),
    )


def iter_records_or_errors(path, *, require_labels=False, ignore_labels=False) -> Iterator[Record | DataError]:
    """Each non-blank line as a ``Record`` or the ``DataError`` that it raised
    (``ignore_labels``: see ``record_from_json``).

    Errors that stop the reading (a cut gzip stream, no file, a UTF-16 file)
    are raised, and an empty file is reported as an error at the end.
    """
    first_line_of = {}  # page_id -> line where it was first seen
    n_lines = 0  # non-blank lines
    for line_number, line in iter_lines_or_errors(path):
        if isinstance(line, DataError):  # not UTF-8: reported, and the next lines are read
            n_lines += 1
            yield line
            continue
        if not line.strip():
            continue
        n_lines += 1
        try:
            record = record_from_json(parse_json_object(line, path, line_number), path, line_number,
                                      require_labels=require_labels, ignore_labels=ignore_labels)
        except DataError as e:
            yield e
            continue
        if record.page_id in first_line_of:
            yield DataError(
                f"'page_id' \"{record.page_id}\" が重複しています（最初は {first_line_of[record.page_id]} 行目）",
                path=path,
                line=line_number,
                field="page_id",
            )
            continue
        first_line_of[record.page_id] = line_number
        yield record
    if not first_line_of:
        why = f"{n_lines} 行すべてにエラーがあります" if n_lines else "空のファイルです"
        yield DataError(f"レコードが 1 件もありません（{why}）", path=path)


def read_jsonl(path, *, require_labels=False) -> Iterator[Record]:
    """Stream the records of a JSONL (or .jsonl.gz) file; stop at the first bad line."""
    for item in iter_records_or_errors(path, require_labels=require_labels):
        if isinstance(item, DataError):
            raise item
        yield item


def read_records_checked(path, *, require_labels=False, max_errors: int | None = 20):
    """Read every good record and collect the errors of the bad lines.

    Returns ``(records, errors)``; the caller decides whether errors are fatal.
    At most ``max_errors`` errors are kept one by one (``None``: all of them);
    the rest are counted in one last summary error, so none goes unnoticed.
    """
    records, errors, n_more = [], [], 0
    for item in iter_records_or_errors(path, require_labels=require_labels):
        if isinstance(item, Record):
            records.append(item)
        elif max_errors is None or len(errors) < max_errors:
            errors.append(item)
        else:
            n_more += 1
    if n_more:
        errors.append(DataError(f"ほかに {n_more} 件のエラーがあります", path=path))
    return records, errors


# ---------------------------------------------------------------- writing


@contextlib.contextmanager
def atomic_writer(path) -> Iterator[IO[str]]:
    """Open ``path`` for writing text so that it appears only when complete.

    Writes go to a temporary file in the same folder, which replaces ``path``
    (``os.replace``) only if the ``with`` block ends without an error. A name
    ending in ``.gz`` is written gzip-compressed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise os_error_about(path, e) from None
    try:
        with os.fdopen(fd, "wb") as raw:
            # mtime=0: the same content gives the same .gz bytes
            binary = gzip.GzipFile(fileobj=raw, mode="wb", filename="", mtime=0) if path.suffix == ".gz" else raw
            with io.TextIOWrapper(binary, encoding="utf-8", newline="\n") as f:
                yield f
        os.chmod(tmp, path.stat().st_mode if path.exists() else 0o644)  # mkstemp makes it private (0600)
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        if isinstance(e, OSError) and (e.filename == tmp or (e.filename is None and e.errno in WRITE_ERRORS)):
            raise os_error_about(path, e) from None  # the user knows the file, not its temporary twin
        raise


# Errors of writing itself (which name no file): the file being written is the one at fault.
WRITE_ERRORS = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


def os_error_about(path, error: OSError) -> OSError:
    """The same error, about ``path`` (not the temporary file written in its place)."""
    return OSError(error.errno, error.strerror, str(path))


def write_json_lines(path, objects: Iterable[dict]) -> None:
    """Write one JSON object a line (UTF-8, Japanese kept readable), atomically."""
    with atomic_writer(path) as f:
        for obj in objects:
            f.write(json.dumps(obj, ensure_ascii=False) + "\n")


def write_jsonl(path, records: Iterable[Record]) -> None:
    """Write records in the common JSONL form, atomically."""
    write_json_lines(path, (dataclasses.asdict(r) for r in records))


# ---------------------------------------------------------------- splits and labels


def split_train_dev(records: list[Record], dev_fraction=0.2, seed=0) -> tuple[list[Record], list[Record]]:
    """Split records into (train, dev), the same way for the same seed.

    Stratified by first label: each label keeps about ``dev_fraction`` of its
    pages in dev (a label with a single page stays in train). Both parts keep
    the input order.
    """
    if not 0 < dev_fraction < 1:
        raise ValueError(f"dev_fraction は 0 より大きく 1 より小さくしてください（{dev_fraction} が指定されました）")
    rng = random.Random(seed)
    dev_indices = set()
    for _, indices in sorted(_indices_by_first_label(records).items()):
        rng.shuffle(indices)
        dev_indices.update(indices[: round(len(indices) * dev_fraction)])
    train = [r for i, r in enumerate(records) if i not in dev_indices]
    dev = [r for i, r in enumerate(records) if i in dev_indices]
    return train, dev


def _indices_by_first_label(records: list[Record]) -> dict[str, list[int]]:
    """Record positions grouped by their first label ('' for unlabeled ones)."""
    groups = defaultdict(list)
    for i, record in enumerate(records):
        groups[record.labels[0] if record.labels else ""].append(i)
    return groups


def label_set(records: Iterable[Record]) -> list[str]:
    """All labels that occur in the records, sorted."""
    return sorted({label for record in records for label in record.labels})
