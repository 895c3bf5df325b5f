"""SHINRA 2022 classification data: official file formats <-> ``Record``.

The official files hold page ids, titles and ENE labels; the page text comes
from a Wikipedia CirrusSearch dump (pairs of lines: an index line with the
page id, then the page document). ``read_shinra`` joins the two by page id.
"""
from __future__ import annotations

import contextlib
import datetime
import random
import re
import warnings
from typing import Iterable, Iterator

from .records import (DataError, Record, get_page_id, get_string, iter_lines_or_errors, parse_json_object,
                      write_json_lines)

HAND_PREFIX = "HAND."
DEFAULT_ANNOTATOR = "HAND.AIP.202204"
MAX_SHOWN_WARNINGS = 20  # lines warned about one by one; the rest are counted
MAX_BAD_LINES_BEFORE_A_PAGE = 1000  # a "dump" whose first lines hold no page is not read to its end
INDEX_LINE = re.compile(r'\s*\{\s*"index"\s*:')  # {"index": {"_id": ...}}, with or without spaces


# ---------------------------------------------------------------- official files: reading


def _iter_pages(path, problems: list[str]) -> Iterator[tuple[int, dict, str, str]]:
    """``(line_number, obj, page_id, title)`` for each good non-blank line of a
    SHINRA file. Each bad line is skipped, and said in ``problems``."""
    for line_number, line in iter_lines_or_errors(path):
        if isinstance(line, DataError):  # not UTF-8
            problems.append(f"{line} (この行は使いません)")
            continue
        if not line.strip():
            continue
        try:
            obj = parse_json_object(line, path, line_number)
            page_id = get_page_id(obj, path, line_number)
            title = get_string(obj, "title", path, line_number, required=False, allow_empty=True)
        except DataError as e:
            problems.append(f"{e} (この行は使いません)")
            continue
        yield line_number, obj, page_id, title


def _warn_lines(path, problems: list[str]) -> None:
    """Warn about the lines in ``problems``: the first few one by one, then how many more."""
    for problem in problems[:MAX_SHOWN_WARNINGS]:
        warnings.warn(problem, stacklevel=3)
    if len(problems) > MAX_SHOWN_WARNINGS:
        warnings.warn(f"{path}: ほかに {len(problems) - MAX_SHOWN_WARNINGS} 行に同じような問題があります",
                      stacklevel=3)


def _annotation_labels(obj: dict, key_prefix: str, path, line_number: int) -> list[str]:
    """The ENE ids under the one ``ENEs`` key that starts with ``key_prefix``."""
    enes = obj.get("ENEs")
    if not isinstance(enes, dict):
        raise DataError("'ENEs' がないか、オブジェクトではありません", path=path, line=line_number, field="ENEs")
    keys = [k for k in enes if k.startswith(key_prefix)]
    if len(keys) != 1:
        raise DataError(
            f"'ENEs' には {key_prefix}* のキーがちょうど 1 つ必要です（{len(keys)} 個あります）",
            path=path,
            line=line_number,
            field="ENEs",
        )
    return _ene_ids(enes[keys[0]], path, line_number, f"ENEs.{keys[0]}")


def _ene_ids(entries, path, line_number: int, where: str) -> list[str]:
    """The distinct ENE ids of a list like ``[{"prob": 1, "ENE": "1.1"}, ...]``, in order."""
    well_formed = isinstance(entries, list) and all(
        isinstance(e, dict) and isinstance(e.get("ENE"), str) for e in entries)
    if not well_formed:
        raise DataError(
            f"'{where}' は {{\"ENE\": 文字列, \"prob\": 数値}} のリストでなければなりません",
            path=path,
            line=line_number,
            field=where,
        )
    return list(dict.fromkeys(e["ENE"] for e in entries))


def read_shinra_annotations(path, *, key_prefix=HAND_PREFIX) -> list[tuple[str, str, list[str]]]:
    """``[(page_id, title, [ENE ids])]`` from a SHINRA training file, in its order.

    ``key_prefix="AUTO."`` reads a submission file the same way (there a page
    may have no ENE; a training page must have one). A bad line is skipped and
    a page on several lines is kept once with all their labels, both with a
    warning; a file without a single good page is a ``DataError``.
    """
    pages, first_line, problems = {}, {}, []
    for line_number, page_id, title, labels in _iter_annotations(path, key_prefix, problems):
        if page_id not in pages:
            pages[page_id], first_line[page_id] = (title, labels), line_number
            continue
        merged = _merge_labels(pages[page_id][1], labels)
        problems.append(f"{path}:{line_number}: 'page_id' \"{page_id}\" が重複しています"
                        f"（最初は {first_line[page_id]} 行目）。{merged}")
    _warn_lines(path, problems)
    require_pages(pages, problems, path)
    return [(page_id, title, labels) for page_id, (title, labels) in pages.items()]


def require_pages(pages, problems: list[str], path, *, a_line_each: bool = True) -> None:
    """A file without a single good page (``pages`` empty, or a count of 0) is a
    ``DataError`` (its problems were warned about). ``a_line_each``: each problem
    is one line of the file (in a dump, a lost page can have two)."""
    if not pages:
        if not problems:
            why = "空のファイルです"
        elif a_line_each:
            why = f"{len(problems)} 行すべてにエラーがあります"
        else:
            why = f"問題のある行が {len(problems)} 行あります"
        raise DataError(f"ページが 1 件もありません（{why}）", path=path)


def _merge_labels(kept: list[str], labels: list[str]) -> str:
    """Add to ``kept`` the labels it lacks, and say what was done."""
    new = [label for label in labels if label not in kept]
    kept += new
    return "1 ページとして、ラベルをまとめて使います" if new else "1 ページとして使います"


def _iter_annotations(path, key_prefix: str, problems: list[str]) -> Iterator[tuple[int, str, str, list[str]]]:
    """``(line_number, page_id, title, [ENE ids])`` for each good line; bad ones go to ``problems``."""
    for line_number, obj, page_id, title in _iter_pages(path, problems):
        try:
            labels = _annotation_labels(obj, key_prefix, path, line_number)
            if not labels and key_prefix == HAND_PREFIX:
                raise DataError("'ENEs' に ENE ラベルが 1 つもありません", path=path, line=line_number, field="ENEs")
        except DataError as e:
            problems.append(f"{e} (この行は使いません)")
            continue
        yield line_number, page_id, title, labels


def iter_cirrus_texts(dump_path, page_ids=None) -> Iterator[tuple[str, str]]:
    """Yield ``(page_id, text)`` from a CirrusSearch dump (.json.gz or plain).

    With ``page_ids``, only those pages are decoded, and reading stops once all
    of them were found. A bad line inside the dump is skipped with a warning,
    and so is the page it belongs to. A record cut short at the end of the file
    (a cut gzip stream, half a line, an index line without its page) raises a
    ``DataError`` after every complete page before it was yielded, as does a
    dump without a single good page.
    """
    wanted = None if page_ids is None else set(page_ids)
    if wanted is not None and not wanted:
        return
    problems, good = [], 0
    try:
        for page_id, line_number, page_line in _cirrus_pairs(dump_path, problems):
            if wanted is not None and page_id not in wanted:
                continue  # not decoded: most of a dump is pages nobody asked for
            try:
                text = _cirrus_text(page_line, dump_path, line_number)
            except DataError as e:
                _skip_line(e, page_line, problems, "このページは使いません")
                continue
            good += 1
            yield page_id, text
            if wanted is not None:
                wanted.discard(page_id)
                if not wanted:
                    return
        if wanted is None:  # every page was decoded: none of them good is an error, as no pair is
            require_pages(good, problems, dump_path, a_line_each=False)
    finally:
        _warn_lines(dump_path, problems)


def _cirrus_pairs(dump_path, problems: list[str]) -> Iterator[tuple[str, int, str]]:
    """``(page_id, line_number, page_line)`` for each index line followed by its page line.

    A line that is not part of such a pair (not UTF-8, a broken index line, a
    page line without its index line) is skipped and said in ``problems``.
    """
    waiting = None  # (page_id, line_number) of an index line whose page line comes next
    pairs = 0
    with contextlib.closing(iter_lines_or_errors(dump_path)) as lines:
        for line_number, line in lines:
            if not pairs and len(problems) >= MAX_BAD_LINES_BEFORE_A_PAGE:
                raise DataError(f"CirrusSearch のダンプではないようです（最初の {line_number - 1} 行に"
                                "ページが 1 件もありません）", path=dump_path)
            if isinstance(line, DataError):  # not UTF-8: its page (if any) is lost too
                if line.cut:  # the file ends inside a character: cut, as a cut JSON line is
                    raise line
                problems.append(f"{line} (この行は使いません)")
                waiting = None
            elif line.isspace():
                continue
            elif _is_index_line(line):
                if waiting is not None:
                    problems.append(f"{dump_path}:{waiting[1]}: インデックス行の次にページの行がありません"
                                    " (このページは使いません)")
                waiting = _cirrus_index(line, dump_path, line_number, problems)
            elif waiting is None:
                _skip_line(DataError("インデックス行のないページの行です", path=dump_path, line=line_number),
                           line, problems, "この行は使いません")
            else:
                if not line.endswith("\n"):  # the last line: a page nobody asked for must not hide a cut
                    parse_json_object(line, dump_path, line_number)
                yield waiting[0], line_number, line
                pairs, waiting = pairs + 1, None
    if waiting is not None:
        raise DataError("ファイルが途中で切れています（インデックス行の次にページの行がありません）",
                        path=dump_path, line=waiting[1] + 1)
    require_pages(pairs, problems, dump_path, a_line_each=False)



def _is_index_line(line: str) -> bool:
    """Whether a dump line is an index line (``{"index": ...}``), without parsing the page lines."""
    return INDEX_LINE.match(line) is not None


def _cirrus_index(line: str, path, line_number: int, problems: list[str]) -> tuple[str, int] | None:
    """``(page_id, line_number)`` of a good index line; a bad one is said in ``problems``."""
    try:
        return _cirrus_page_id(line, path, line_number), line_number
    except DataError as e:
        _skip_line(e, line, problems, "このページは使いません")
        return None


def _skip_line(error: DataError, line: str, problems: list[str], action: str) -> None:
    """Say a bad line in ``problems``; the last line cut short means the file is cut: raise."""
    if not line.endswith("\n"):
        raise error
    problems.append(f"{error} ({action})")


def _cirrus_page_id(line: str, path, line_number: int) -> str:
    """The page id of a dump index line ``{"index": {"_id": "123", ...}}``."""
    index = parse_json_object(line, path, line_number).get("index")
    page_id = index.get("_id") if isinstance(index, dict) else None
    if isinstance(page_id, int) and not isinstance(page_id, bool):
        page_id = str(page_id)
    if not isinstance(page_id, str) or not page_id:
        raise DataError("インデックス行に 'index._id' がありません", path=path, line=line_number, field="index._id")
    return page_id


def _cirrus_text(line: str, path, line_number: int) -> str:
    """The body text of a dump page line (``''`` when the page has none)."""
    text = parse_json_object(line, path, line_number).get("text")
    if text is not None and not isinstance(text, str):
        raise DataError("'text' は文字列でなければなりません", path=path, line=line_number, field="text")
    return text or ""


def read_cirrus_texts(dump_path, page_ids) -> dict[str, str]:
    """``{page_id: text}`` for the requested pages that the dump holds with a text."""
    return {page_id: text for page_id, text in iter_cirrus_texts(dump_path, page_ids) if text.strip()}


# ---------------------------------------------------------------- joining with the dump


def read_shinra(train_path, dump_path, *, sample=None, single_label=False, seed=0) -> list[Record]:
    """Labeled ``Record``s: the training file's pages with their text from the dump.

    ``single_label`` drops the pages with several ENEs; ``sample`` then keeps
    that many pages drawn at random with ``seed``. The workshop's setup is
    ``sample=5000, single_label=True``. Pages missing from the dump are
    dropped with a warning, as are bad lines of the training file (see
    ``read_shinra_annotations``). Records keep the training file's order.
    """
    pages = read_shinra_annotations(train_path)
    if single_label:
        pages = [p for p in pages if len(p[2]) == 1]
    if sample is not None:
        pages = _sample_in_order(pages, sample, seed)
    texts = read_cirrus_texts(dump_path, [page_id for page_id, _, _ in pages])
    _warn_missing([page_id for page_id, _, _ in pages if page_id not in texts], dump_path, "除外しました")
    return [Record(page_id, title, texts[page_id], labels) for page_id, title, labels in pages if page_id in texts]


def _sample_in_order(items: list, k: int, seed: int) -> list:
    """``k`` items drawn at random (all of them if fewer), in their original order."""
    if k < 0:
        raise ValueError(f"sample は 0 以上にしてください（{k} が指定されました）")
    chosen = random.Random(seed).sample(range(len(items)), min(k, len(items)))
    return [items[i] for i in sorted(chosen)]


def _warn_missing(page_ids: list[str], dump_path, action: str) -> None:
    """Warn (in Japanese) about pages that the dump does not hold."""
    if page_ids:
        shown = ", ".join(page_ids[:5]) + (" ..." if len(page_ids) > 5 else "")
        warnings.warn(
            f"{dump_path}: {len(page_ids)} ページの本文がダンプにありません（{shown}）。{action}",
            stacklevel=3,
        )


def count_input_pages(inputs_path) -> int:
    """How many pages read_shinra_inputs will give: each input page once."""
    problems = []
    pages = {page_id for _, _, page_id, _ in _iter_pages(inputs_path, problems)}
    if not pages:  # the error comes here, before reading: say first which lines are bad
        _warn_lines(inputs_path, problems)
    require_pages(pages, problems, inputs_path)
    return len(pages)


def read_shinra_inputs(inputs_path, dump_path) -> Iterator[Record]:
    """Unlabeled ``Record``s for a leaderboard/test input file, text from the dump.

    Streamed in the dump's order, so no text is held in memory (a leaderboard
    can ask for every page of Wikipedia). Every input page comes once, since a
    submission must answer all of them: pages missing from the dump (or without
    text there) come last, with their title as text (and a warning). A bad
    line of the input file is skipped with a warning.
    """
    problems = []
    titles = {page_id: title for _, _, page_id, title in _iter_pages(inputs_path, problems)}
    _warn_lines(inputs_path, problems)
    require_pages(titles, problems, inputs_path)
    answered = set()
    for page_id, text in iter_cirrus_texts(dump_path, titles):
        if text.strip() and page_id not in answered:
            answered.add(page_id)
            yield Record(page_id, titles[page_id], text)
    missing = [page_id for page_id in titles if page_id not in answered]
    _warn_missing(missing, dump_path, "タイトルを本文の代わりに使います")
    for page_id in missing:
        yield Record(page_id, titles[page_id], titles[page_id] or page_id)


# ---------------------------------------------------------------- official files: writing


def submission_key(system="MyBERT", yyyymm=None) -> str:
    """The ``ENEs`` key of a submission: ``AUTO.<system>.<yyyyMM>`` (this month by default)."""
    yyyymm = yyyymm or datetime.date.today().strftime("%Y%m")
    if not re.fullmatch(r"[A-Za-z0-9_-]+", system):
        raise ValueError(f"システム名には英数字・'_'・'-' だけが使えます（{system!r}）")
    if not re.fullmatch(r"\d{4}(0[1-9]|1[0-2])", str(yyyymm)):
        raise ValueError(f"yyyymm は 202207 のような年月 6 桁にしてください（{yyyymm!r}）")
    return f"AUTO.{system}.{yyyymm}"


def write_shinra_submission(path, rows: Iterable[tuple[str, str, list[tuple[str, float]]]],
                            system="MyBERT", yyyymm=None) -> None:
    """Write a submission: one input line per page with its ``(ENE, prob)`` predictions."""
    key = submission_key(system, yyyymm)
    write_json_lines(path, (
        {"page_id": page_id, "title": title,
         "ENEs": {key: [{"prob": float(prob), "ENE": ene} for ene, prob in predictions]}}
        for page_id, title, predictions in rows
    ))


def write_shinra_training_file(path, rows: Iterable[tuple[str, str, list[str]]],
                               annotator=DEFAULT_ANNOTATOR) -> None:
    """Write ``(page_id, title, [ENE ids])`` rows in the official training format."""
    write_json_lines(path, (
        {"page_id": page_id, "title": title, "ENEs": {annotator: [{"prob": 1, "ENE": ene} for ene in labels]}}
        for page_id, title, labels in rows
    ))


def write_shinra_inputs(path, rows: Iterable[tuple[str, str]]) -> None:
    """Write ``(page_id, title)`` rows in the official leaderboard/test input format."""
    write_json_lines(path, ({"page_id": page_id, "title": title, "ENEs": {}} for page_id, title in rows))


def write_cirrus_dump(path, pages: Iterable[tuple[str, str, str]]) -> None:
    """Write ``(page_id, title, text)`` pages as a CirrusSearch dump (gzip if ``.gz``)."""
    write_json_lines(path, (
        obj
        for page_id, title, text in pages
        for obj in ({"index": {"_type": "page", "_id": page_id}},
                    {"namespace": 0, "title": title, "text": text, "wiki": "jawiki"})
    ))
