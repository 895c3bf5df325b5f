"""The SHINRA classification scorer: input checks, then a streaming micro-F1.

Two line formats are read, for gold and submission alike:

* SHINRA: ``{"page_id", "title", "ENEs": {KEY: [{"prob", "ENE"}, ...]}}``, where gold
  lines use ``HAND.*`` keys and a submission exactly one ``AUTO.<system>.<yyyyMM>`` key;
* our own simple form: ``{"page_id", "labels": [...], "probs": [...]}`` (``probs`` optional).

Micro-F1 counts (page, label) pairs summed over all gold pages:
F1 = 2·TP / ((TP+FP) + (TP+FN)), reported ×100. A gold page that the submission
leaves out counts as predicting IGNORED (ENE ``9``), as the official SHINRA scorer
does; with non-ENE labels it counts as predicting nothing. Gold in the SHINRA form,
or in the simple form with only ENE ids as labels, is the SHINRA task (ENE labels).

The gold file is held in memory (page id -> label set); the submission is streamed
line by line, so its size does not matter. Either file may be gzipped.
"""
from __future__ import annotations

import csv
import io
import itertools
import json
import re
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from solutions import ene
from solutions.data import DataError
from solutions.data.records import open_lines
from solutions.metrics import f1_from_counts

LABEL_SPACES = ("auto", "ene", "any")
AUTO_KEY_RE = re.compile(r"AUTO\.[^.\s]+(\.[^.\s]+)*\.\d{6}")
ALL_PAGES = "all"
MISSING_EXAMPLES = 5  # page ids of missing pages kept in a report, to show
_UTF8_BOM = b"\xef\xbb\xbf"


# --- errors -----------------------------------------------------------------

@dataclass(frozen=True)
class SubmissionError:
    """One problem in an input file; ``line`` is None for problems with the whole file."""

    path: str
    line: int | None
    field: str | None
    reason: str

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return f"{where}: {self.field}: {self.reason}" if self.field else f"{where}: {self.reason}"


class InvalidInput(ValueError):
    """A file failed the checks; ``errors`` lists the first few, ``total`` counts all."""

    role = "入力ファイル"

    def __init__(self, errors: list[SubmissionError], total: int):
        self.errors = list(errors)
        self.total = total
        super().__init__(format_errors(self.errors, total, self.role))


class InvalidSubmission(InvalidInput):
    role = "提出ファイル"


class InvalidGold(InvalidInput):
    role = "正解ファイル"


def format_errors(errors: list[SubmissionError], total: int, role: str = "提出ファイル") -> str:
    lines = [f"{role}に {total} 件の誤りがあります。採点しません。"]
    lines += [f"  {e}" for e in errors]
    if total > len(errors):
        lines.append(f"  ... ほか {total - len(errors)} 件")
    return "\n".join(lines)


class _ErrorLog:
    def __init__(self, path: str | Path, limit: int):
        self.path = str(path)
        self.limit = max(0, limit)
        self.errors: list[SubmissionError] = []
        self.total = 0

    def add(self, line: int | None, field: str | None, reason: str) -> None:
        self.total += 1
        if len(self.errors) < self.limit:
            self.errors.append(SubmissionError(self.path, line, field, reason))


class _Bad(Exception):
    """A problem found while reading one line: (field, reason)."""

    def __init__(self, field: str | None, reason: str):
        super().__init__(reason)
        self.field = field
        self.reason = reason


# --- counts and the report --------------------------------------------------

@dataclass(frozen=True)
class Counts:
    """True positives, false positives, false negatives; scores are ×100."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    def __add__(self, other: "Counts") -> "Counts":
        return Counts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    @property
    def scores(self) -> dict:
        """micro_f1, precision and recall (×100), by the one formula in solutions.metrics."""
        return f1_from_counts(self.tp, self.tp + self.fp, self.tp + self.fn)

    @property
    def precision(self) -> float:
        return self.scores["precision"]

    @property
    def recall(self) -> float:
        return self.scores["recall"]

    @property
    def f1(self) -> float:
        return self.scores["micro_f1"]

    @property
    def support(self) -> int:
        return self.tp + self.fn

    def to_dict(self) -> dict:
        return {"tp": self.tp, "fp": self.fp, "fn": self.fn, "precision": self.precision,
                "recall": self.recall, "f1": self.f1}


@dataclass(frozen=True)
class ScoreReport:
    """Micro-F1 (×100) and its parts.

    ``pages`` gold pages were scored, ``missing_pages`` of them absent from the
    submission; ``missing_examples`` names the first few of those (gold file order). ``by_top_level`` is keyed by top-level ENE id ("0", "1", "2", "3", "9";
    empty for non-ENE labels). ``per_label`` is filled on request. ``parts`` holds
    one report per part when the pages were partitioned (e.g. public/private).
    """

    tp: int
    fp: int
    fn: int
    pages: int
    missing_pages: int
    label_space: str
    system: str | None = None
    missing_examples: tuple[str, ...] = ()
    by_top_level: dict[str, Counts] = field(default_factory=dict)
    per_label: dict[str, Counts] | None = None
    parts: dict[str, "ScoreReport"] = field(default_factory=dict)

    @property
    def counts(self) -> Counts:
        return Counts(self.tp, self.fp, self.fn)

    @property
    def precision(self) -> float:
        return self.counts.precision

    @property
    def recall(self) -> float:
        return self.counts.recall

    @property
    def f1(self) -> float:
        return self.counts.f1

    def to_dict(self) -> dict:
        d = {"f1": self.f1, "precision": self.precision, "recall": self.recall,
             "tp": self.tp, "fp": self.fp, "fn": self.fn, "pages": self.pages,
             "missing_pages": self.missing_pages,
             "missing_examples": list(self.missing_examples), "label_space": self.label_space,
             "system": self.system,
             "by_top_level": {k: c.to_dict() for k, c in self.by_top_level.items()}}
        if self.per_label is not None:
            d["per_label"] = {k: c.to_dict() for k, c in self.per_label.items()}
        if self.parts:
            d["parts"] = {k: r.to_dict() for k, r in self.parts.items()}
        return d


# --- reading lines ----------------------------------------------------------

_scan_json = json.JSONDecoder().scan_once  # the C scanner behind json.loads
_JSON_SPACE = " \t\n\r"


def _open_input(path: str | Path, log: _ErrorLog):
    """The file as bytes, gunzipped if gzip (solutions' readers open it so too); None if it cannot open."""
    try:
        return open_lines(path)
    except DataError as e:
        log.add(None, None, e.message)
        return None


def _read_records(path: str | Path, log: _ErrorLog) -> Iterator[tuple[int, dict]]:
    """Yield (line number, JSON object) for each non-blank line; log what cannot be read."""
    f = _open_input(path, log)
    if f is None:
        return
    yielded, errors_before, lineno = 0, log.total, 0
    with f:
        try:
            for lineno, raw in enumerate(f, 1):
                try:  # the common line, '{...}\n', inline: this loop runs 10^6 times
                    text = raw.decode("utf-8")
                    obj, end = _scan_json(text, 0)
                    if type(obj) is not dict or (end != len(text)
                                                 and text[end:].strip(_JSON_SPACE)):
                        obj = None
                except (StopIteration, ValueError):  # UnicodeDecodeError is a ValueError
                    obj = None
                if obj is None:
                    obj = _read_line_slowly(lineno, raw, log)
                    if obj is None:
                        continue
                yielded += 1
                yield lineno, obj
        except (OSError, EOFError, zlib.error) as e:  # a cut or corrupt gzip stream
            log.add(lineno + 1, None, f"ファイルを最後まで読めません ({e})")
            return
    if yielded == 0 and log.total == errors_before:
        log.add(None, None, "空のファイルです")


def _read_line_slowly(lineno: int, raw: bytes, log: _ErrorLog) -> dict | None:
    """The JSON object on a line that is not plain ``{...}``; None for a blank or bad line."""
    if lineno == 1 and raw.startswith(_UTF8_BOM):
        raw = raw[len(_UTF8_BOM):]
    if not raw.strip():
        return None
    try:
        obj = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        log.add(lineno, None, f"UTF-8 ではありません ({e.start + 1} バイト目)")
        return None
    except ValueError as e:
        detail = f"{e.msg}, {e.colno} 文字目" if isinstance(e, json.JSONDecodeError) else e
        log.add(lineno, None, f"JSON として読めません ({detail})")
        return None
    if type(obj) is not dict:
        log.add(lineno, None, "JSON オブジェクト {...} ではありません")
        return None
    return obj


def _page_id(obj: dict) -> str:
    pid = obj.get("page_id")
    kind = type(pid)
    if kind is str and pid:
        return pid
    if kind is int:
        return str(pid)
    if pid is None:
        raise _Bad("page_id", "page_id がありません")
    raise _Bad("page_id", "page_id は空でない文字列にしてください")


_MISSING = object()


def _check_prob(value: object, where: str) -> None:
    kind = type(value)
    if kind is not float and kind is not int:
        reason = "prob がありません" if value is _MISSING else "prob は数値にしてください"
        raise _Bad(where, reason)
    if not 0 <= value <= 1:
        raise _Bad(where, f"prob が [0, 1] の外です: {value}")


def _check_label(label: object, where: str, allowed: frozenset[str] | None) -> str:
    if type(label) is not str or not label:
        raise _Bad(where, "ラベルは空でない文字列にしてください")
    if allowed is not None and label not in allowed:
        raise _Bad(where, f"ENE v9 の階層にない ID です: {label!r}")
    return label


def _ene_items(items: object, key: str, allowed, need_prob: bool) -> list[str]:
    """Labels of ``ENEs[key]``, a list of {"prob", "ENE"}; ``_Bad`` if anything is off."""
    labels = _ene_items_quick(items, allowed, need_prob)
    return labels if labels is not None else _ene_items_checked(items, key, allowed, need_prob)


def _ene_items_quick(items: object, allowed, need_prob: bool) -> list[str] | None:
    """The common, valid case, fast; None for anything that needs a closer look."""
    if type(items) is not list:
        return None
    labels = []
    for item in items:
        if type(item) is not dict:
            return None
        label = item.get("ENE")
        if type(label) is not str or not (label in allowed if allowed is not None else label):
            return None
        if need_prob:
            prob = item.get("prob")
            kind = type(prob)
            if (kind is not float and kind is not int) or not 0 <= prob <= 1:
                return None
        labels.append(label)
    return labels


def _ene_items_checked(items: object, key: str, allowed, need_prob: bool) -> list[str]:
    where = f"ENEs.{key}"
    if type(items) is not list:
        raise _Bad(where, 'リスト [{"prob": ..., "ENE": ...}, ...] にしてください')
    labels = []
    for i, item in enumerate(items):
        if type(item) is not dict:
            raise _Bad(f"{where}[{i}]", '{"prob": ..., "ENE": ...} の形にしてください')
        if "ENE" not in item:
            raise _Bad(f"{where}[{i}]", "ENE がありません")
        labels.append(_check_label(item["ENE"], f"{where}[{i}].ENE", allowed))
        if need_prob:
            _check_prob(item.get("prob", _MISSING), f"{where}[{i}].prob")
    return labels


def _simple_labels(obj: dict, allowed, check_probs: bool) -> list[str]:
    labels = obj["labels"]
    if type(labels) is not list:
        raise _Bad("labels", "labels はリストにしてください")
    checked = [_check_label(x, f"labels[{i}]", allowed) for i, x in enumerate(labels)]
    probs = obj.get("probs")
    if check_probs and probs is not None:
        if type(probs) is not list:
            raise _Bad("probs", "probs は数値のリストにしてください")
        for i, p in enumerate(probs):
            _check_prob(p, f"probs[{i}]")
    return checked


def _auto_key(enes: object) -> str:
    """The one AUTO.<system>.<yyyyMM> key of a submission line's ENEs."""
    if type(enes) is not dict:
        raise _Bad("ENEs", "ENEs はオブジェクト {...} にしてください")
    autos = [k for k in enes if k.startswith("AUTO.")]
    others = [k for k in enes if not k.startswith("AUTO.")]
    if others:
        raise _Bad("ENEs", f"AUTO.<system>.<yyyyMM> 以外のキーがあります: {others[0]!r}")
    if len(autos) > 1:
        raise _Bad("ENEs", f"AUTO キーが {len(autos)} 個あります (1 個だけにしてください)")
    if not autos:
        raise _Bad("ENEs", "AUTO.<system>.<yyyyMM> キーがありません")
    if not AUTO_KEY_RE.fullmatch(autos[0]):
        raise _Bad("ENEs", f"キーは AUTO.<system>.<yyyyMM> の形にしてください: {autos[0]!r}")
    return autos[0]


# --- gold -------------------------------------------------------------------

@dataclass(frozen=True)
class Gold:
    """Gold labels of every page, read and checked."""

    path: str
    labels: dict[str, frozenset[str]]
    label_space: str  # "ene" or "any"
    form: str  # "shinra" or "simple"

    def __len__(self) -> int:
        return len(self.labels)


def _record_form(obj: dict) -> str | None:
    if "ENEs" in obj:
        return "shinra"
    if "labels" in obj:
        return "simple"
    return None


def _quick_gold_line(obj: dict, allowed) -> tuple[str, list[str]] | None:
    """(page id, labels) of a plain SHINRA gold line, fast; None if it needs a closer look."""
    pid = obj.get("page_id")
    enes = obj.get("ENEs")
    if type(pid) is not str or not pid or type(enes) is not dict or len(enes) != 1:
        return None
    (key,) = enes
    if not key.startswith("HAND."):
        return None
    labels = _ene_items_quick(enes[key], allowed, need_prob=False)
    return (pid, labels) if labels else None


def _checked_gold_line(obj: dict, form: str, allowed) -> tuple[str, list[str]]:
    pid = _page_id(obj)
    line_form = _record_form(obj)
    if line_form is None:
        raise _Bad(None, "ENEs も labels もありません")
    if line_form != form:
        raise _Bad(None, "1 行目と形式が違います (ENEs と labels が混在しています)")
    if form == "simple":
        return pid, _simple_labels(obj, allowed, check_probs=False)
    return pid, _hand_labels(obj["ENEs"], allowed)


def _hand_labels(enes: object, allowed) -> list[str]:
    if type(enes) is not dict:
        raise _Bad("ENEs", "ENEs はオブジェクト {...} にしてください")
    hand = [k for k in enes if k.startswith("HAND.")]
    if not hand:
        raise _Bad("ENEs", "HAND.* キーがありません (正解ラベル付きのファイルですか?)")
    labels = []
    for key in hand:
        labels += _ene_items(enes[key], key, allowed, need_prob=False)
    if not labels:
        raise _Bad("ENEs", "正解ラベルが空です")
    return labels


def _resolve_label_space(label_space: str, form: str | None) -> str:
    if label_space not in LABEL_SPACES:
        raise ValueError(f"label_space は {LABEL_SPACES} のどれかです: {label_space!r}")
    if label_space != "auto":
        return label_space
    return "ene" if form == "shinra" else "any"


def _only_ene_ids(gold: dict[str, frozenset[str]], hierarchy: ene.Hierarchy | None) -> bool:
    """Whether the gold labels are SHINRA's ENE ids (simple-form gold written by
    `bert-workshop data` from SHINRA pages: scored as the SHINRA task)."""
    return ene.is_ene_label_set(set().union(*set(gold.values())), hierarchy)  # interned sets: few to join


def load_gold(path: str | Path, *, label_space: str = "auto",
              hierarchy: ene.Hierarchy | None = None, max_errors: int = 20) -> Gold:
    """Read and check a gold file. ``label_space="auto"`` means ENE ids for SHINRA-form
    gold, and for simple-form gold whose labels are all ENE v9 ids; any labels for
    other simple-form gold. Raises ``InvalidGold``."""
    _resolve_label_space(label_space, None)
    log = _ErrorLog(path, max_errors)
    gold: dict[str, frozenset[str]] = {}
    interned: dict[frozenset[str], frozenset[str]] = {}
    form = allowed = None
    for lineno, obj in _read_records(path, log):
        if form is None:  # the first line that says decides the format
            form = _record_form(obj)
            if form is not None and _resolve_label_space(label_space, form) == "ene":
                allowed = (hierarchy or ene.default_hierarchy()).ids()
        quick = _quick_gold_line(obj, allowed) if form == "shinra" else None
        try:
            pid, labels = quick or _checked_gold_line(obj, form, allowed)
        except _Bad as bad:
            log.add(lineno, bad.field, bad.reason)
            continue
        labels = frozenset(labels)
        size = len(gold)
        gold[pid] = interned.setdefault(labels, labels)
        if len(gold) == size:  # one dict probe per line: this matters at 10^6 pages
            log.add(lineno, "page_id", f"page_id が重複しています: {pid}")
    if gold and not any(gold.values()):  # nothing to find: F1 would be 0 whatever the submission
        log.add(None, "labels", "どのページにも正解ラベルがありません (ラベルのない入力ファイルを正解として渡していませんか?)")
    if log.total:
        raise InvalidGold(log.errors, log.total)
    space = _resolve_label_space(label_space, form)
    if label_space == "auto" and form == "simple" and _only_ene_ids(gold, hierarchy):
        space = "ene"
    return Gold(str(path), gold, space, form)


# --- scoring ----------------------------------------------------------------

class _Tally:
    """How often each (gold labels, predicted labels) pair occurs in one part of the pages.

    Pages share few distinct pairs, so counting pairs is cheap; the per-label
    counts are worked out from them at the end. Predictions are kept as tuples
    as written (cheaper to build than sets); repeats count once.
    """

    __slots__ = ("pairs", "missing", "missing_examples")

    def __init__(self):
        self.pairs: dict[tuple[frozenset[str], tuple[str, ...]], int] = defaultdict(int)
        self.missing = 0
        self.missing_examples: list[str] = []  # the first MISSING_EXAMPLES of them

    @property
    def pages(self) -> int:
        return sum(self.pairs.values())

    def per_label(self) -> dict[str, Counts]:
        tp, fp, fn = defaultdict(int), defaultdict(int), defaultdict(int)
        for (gold, written), n in self.pairs.items():
            predicted = frozenset(written)
            for label in predicted:
                if label in gold:
                    tp[label] += n
                else:
                    fp[label] += n
            for label in gold - predicted:
                fn[label] += n
        return {x: Counts(tp.get(x, 0), fp.get(x, 0), fn.get(x, 0))
                for x in set(tp) | set(fp) | set(fn)}


def _label_sort_key(label: str):
    try:
        return (0, ene.sort_key(label), label)
    except ValueError:
        return (1, (), label)


class _SubmissionScan:
    """Reads a submission once: checks every line, tallies the valid ones."""

    def __init__(self, gold: Gold, log: _ErrorLog, partition, hierarchy):
        self.gold = gold
        self.remaining = dict(gold.labels)
        self.log = log
        self.partition = partition
        self.allowed = hierarchy.ids() if gold.label_space == "ene" else None
        self.tallies: dict[str, _Tally] = defaultdict(_Tally)
        self.system: str | None = None
        self.system_line = 0
        self.form: str | None = None  # "shinra" or "simple": the first line's, for every line
        self.form_line = 0
        self.missing_examples: list[str] = []

    def run(self, path: str | Path) -> None:
        for lineno, obj in _read_records(path, self.log):
            try:
                self._line(lineno, obj)
            except _Bad as bad:
                self.log.add(lineno, bad.field, bad.reason)
        self._add_missing_pages()

    def _line(self, lineno: int, obj: dict) -> None:
        pid = obj.get("page_id")
        if type(pid) is not str or not pid:
            pid = _page_id(obj)
        gold = self.remaining.pop(pid, None)  # one dict probe: this matters at 10^6 pages
        if gold is None:
            if pid in self.gold.labels:
                raise _Bad("page_id", f"page_id が重複しています: {pid}")
            raise _Bad("page_id", f"正解データにないページです: {pid}")
        labels = None
        enes = obj.get("ENEs")
        if type(enes) is dict and len(enes) == 1:  # the common case, fast
            (key,) = enes
            if key == self.system:
                labels = _ene_items_quick(enes[key], self.allowed, need_prob=True)
        if labels is None:
            labels = self._predicted_checked(lineno, obj)
        part = ALL_PAGES if self.partition is None else self.partition(pid)
        self.tallies[part].pairs[gold, tuple(labels)] += 1

    def _predicted_checked(self, lineno: int, obj: dict) -> list[str]:
        self._check_form(lineno, _record_form(obj))
        if "ENEs" in obj:
            enes = obj["ENEs"]
            key = _auto_key(enes)
            self._check_system(lineno, key)
            return _ene_items(enes[key], key, self.allowed, need_prob=True)
        if "labels" in obj:
            return _simple_labels(obj, self.allowed, check_probs=True)
        raise _Bad(None, "ENEs も labels もありません")

    def _check_form(self, lineno: int, form: str | None) -> None:
        """One file, one format, as for the gold file (a line of the fast path is SHINRA's,
        and comes after the first SHINRA line, which came here)."""
        if form is None:
            return  # reported below: neither ENEs nor labels
        if self.form is None:
            self.form, self.form_line = form, lineno
        elif form != self.form:
            raise _Bad(None, f"{self.form_line} 行目と形式が違います (ENEs と labels が混在しています)")

    def _check_system(self, lineno: int, key: str) -> None:
        if self.system is None:
            self.system, self.system_line = key, lineno
        elif key != self.system:
            raise _Bad("ENEs", f"AUTO キーが {self.system_line} 行目の {self.system!r} と違います: "
                               f"{key!r} (1 ファイル 1 システムです)")

    def _add_missing_pages(self) -> None:
        missing = (ene.IGNORED,) if self.gold.label_space == "ene" else ()
        self.missing_examples = list(itertools.islice(self.remaining, MISSING_EXAMPLES))
        for pid, gold in self.remaining.items():
            tally = self.tallies[ALL_PAGES if self.partition is None else self.partition(pid)]
            tally.pairs[gold, missing] += 1
            tally.missing += 1
            if len(tally.missing_examples) < MISSING_EXAMPLES:
                tally.missing_examples.append(pid)


def _report(tallies: list[_Tally], label_space: str, system, hierarchy, per_label: bool,
            parts: dict[str, "ScoreReport"] | None = None,
            missing_examples: list[str] | None = None) -> ScoreReport:
    merged: dict[str, Counts] = {}
    for tally in tallies:
        for label, counts in tally.per_label().items():
            merged[label] = merged.get(label, Counts()) + counts
    merged = dict(sorted(merged.items(), key=lambda kv: _label_sort_key(kv[0])))
    total = sum(merged.values(), Counts())
    return ScoreReport(
        tp=total.tp, fp=total.fp, fn=total.fn,
        pages=sum(t.pages for t in tallies),
        missing_pages=sum(t.missing for t in tallies),
        missing_examples=tuple(missing_examples if missing_examples is not None
                               else [p for t in tallies for p in t.missing_examples]
                               )[:MISSING_EXAMPLES],
        label_space=label_space, system=system,
        by_top_level=_by_top_level(merged, hierarchy) if label_space == "ene" else {},
        per_label=merged if per_label else None,
        parts=parts or {},
    )


def _by_top_level(per_label: dict[str, Counts], hierarchy: ene.Hierarchy) -> dict[str, Counts]:
    groups: dict[str, Counts] = {}
    for label, counts in per_label.items():
        top = hierarchy.top_level(label)
        groups[top] = groups.get(top, Counts()) + counts
    return dict(sorted(groups.items(), key=lambda kv: ene.sort_key(kv[0])))


def score_submission(gold: Gold, submission_path: str | Path, *, max_errors: int = 20,
                     per_label: bool = False,
                     partition: Callable[[str], str] | None = None,
                     hierarchy: ene.Hierarchy | None = None) -> ScoreReport:
    """Check and score one submission against loaded gold. Raises ``InvalidSubmission``.

    ``partition(page_id) -> part name`` splits the pages (e.g. "public"/"private");
    the report then has one entry per part in ``parts``, and its totals cover all pages.
    """
    hierarchy = hierarchy or ene.default_hierarchy()
    log = _ErrorLog(submission_path, max_errors)
    scan = _SubmissionScan(gold, log, partition, hierarchy)
    scan.run(submission_path)
    if log.total:
        raise InvalidSubmission(log.errors, log.total)
    parts = None
    if partition is not None:
        parts = {name: _report([t], gold.label_space, scan.system, hierarchy, per_label)
                 for name, t in sorted(scan.tallies.items())}
    return _report(list(scan.tallies.values()), gold.label_space, scan.system, hierarchy,
                   per_label, parts, scan.missing_examples)


def score_files(gold_path: str | Path, submission_path: str | Path, *, max_errors: int = 20,
                per_label: bool = False, label_space: str = "auto",
                partition: Callable[[str], str] | None = None,
                hierarchy: ene.Hierarchy | None = None) -> ScoreReport:
    """Check both files and score the submission.

    ``label_space``: "auto" (ENE ids for SHINRA-form gold and for simple-form gold
    whose labels are all ENE ids, any labels for other simple-form gold), "ene" or "any". Raises ``InvalidGold`` or ``InvalidSubmission``, whose
    ``errors`` lists up to ``max_errors`` ``SubmissionError``s and ``total`` counts all.
    """
    gold = load_gold(gold_path, label_space=label_space, hierarchy=hierarchy,
                     max_errors=max_errors)
    return score_submission(gold, submission_path, max_errors=max_errors,
                            per_label=per_label, partition=partition, hierarchy=hierarchy)


def per_label_csv(report: ScoreReport, hierarchy: ene.Hierarchy | None = None) -> str:
    """The per-label table as CSV (needs a report made with ``per_label=True``)."""
    if report.per_label is None:
        raise ValueError("per_label=True で採点したレポートが必要です")
    hierarchy = hierarchy or ene.default_hierarchy()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["label", "name", "top_level", "tp", "fp", "fn", "support",
                     "precision", "recall", "f1"])
    for label, c in report.per_label.items():
        known = report.label_space == "ene" and label in hierarchy
        writer.writerow([label, hierarchy.name(label) if known else "",
                         hierarchy.top_level(label) if known else "",
                         c.tp, c.fp, c.fn, c.support,
                         f"{c.precision:.4f}", f"{c.recall:.4f}", f"{c.f1:.4f}"])
    return out.getvalue()
