"""The SHINRA scorer: hand-computed cases, a scikit-learn cross-check, input checks, CLI."""
import argparse
import gzip
import json
import math
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.metrics import f1_score, precision_score, recall_score
from sklearn.preprocessing import MultiLabelBinarizer

from autograder.leaderboard import cli
from autograder.leaderboard.scorer import (
    Counts, InvalidGold, InvalidSubmission, load_gold, per_label_csv, score_files)
from solutions import ene

SYSTEM = "AUTO.MyBERT.202207"


# --- writing fixtures -------------------------------------------------------

def shinra_line(pid, labels, key="HAND.AIP.202204", probs=None, title="t"):
    probs = probs or [1] * len(labels)
    entries = [{"prob": p, "ENE": x} for x, p in zip(labels, probs)]
    return json.dumps({"page_id": pid, "title": title, "ENEs": {key: entries}},
                      ensure_ascii=False)


def write_gold(path, pages: dict):
    path.write_text("".join(shinra_line(pid, labels) + "\n" for pid, labels in pages.items()),
                    encoding="utf-8")
    return path


def write_submission(path, pages: dict, key=SYSTEM):
    lines = [shinra_line(pid, labels, key=key, probs=[0.5] * len(labels))
             for pid, labels in pages.items()]
    path.write_text("".join(x + "\n" for x in lines), encoding="utf-8")
    return path


def write_simple(path, pages: dict, with_probs=False):
    rows = []
    for pid, labels in pages.items():
        row = {"page_id": pid, "labels": list(labels)}
        if with_probs:
            row["probs"] = [0.9] * len(labels)
        rows.append(json.dumps(row, ensure_ascii=False))
    path.write_text("".join(r + "\n" for r in rows), encoding="utf-8")
    return path


def score(tmp_path, gold: dict, sub: dict, **kwargs):
    return score_files(write_gold(tmp_path / "gold.jsonl", gold),
                       write_submission(tmp_path / "sub.jsonl", sub), **kwargs)


GOLD = {"1": ["1.7.13.6"], "2": ["1.1", "1.2"], "3": ["9"], "4": ["2.1"]}


# --- hand-computed cases ----------------------------------------------------

def test_perfect_submission(tmp_path):
    report = score(tmp_path, GOLD, GOLD)
    assert (report.tp, report.fp, report.fn) == (5, 0, 0)
    assert report.f1 == report.precision == report.recall == 100.0
    assert report.pages == 4 and report.missing_pages == 0
    assert report.system == SYSTEM


def test_all_wrong(tmp_path):
    report = score(tmp_path, GOLD, {pid: ["0"] for pid in GOLD})
    assert (report.tp, report.fp, report.fn) == (0, 4, 5)
    assert report.f1 == 0.0


def test_partly_right_with_a_missing_page(tmp_path):
    # page 1 right; page 2 one of two; page 3 missing -> predicted "9", which is right;
    # page 4 wrong.  TP 3, FP 1 (page 4), FN 2 (page 2's 1.2, page 4's 2.1)
    sub = {"1": ["1.7.13.6"], "2": ["1.1"], "4": ["1.1"]}
    report = score(tmp_path, GOLD, sub)
    assert (report.tp, report.fp, report.fn) == (3, 1, 2)
    assert report.precision == pytest.approx(75.0)
    assert report.recall == pytest.approx(60.0)
    assert report.f1 == pytest.approx(2 * 3 / (4 + 5) * 100)
    assert f"{report.f1:.4f}" == "66.6667"
    assert report.missing_pages == 1


def test_missing_page_counts_as_ignored(tmp_path):
    gold = {"1": ["1.1"], "2": ["9"], "3": ["1.2"]}
    report = score(tmp_path, gold, {"3": ["1.2"]}, per_label=True)
    # page 1: predicted 9 -> FP 9, FN 1.1; page 2: predicted 9 -> TP; page 3 right
    assert (report.tp, report.fp, report.fn) == (2, 1, 1)
    assert report.missing_pages == 2
    assert report.per_label["9"] == Counts(tp=1, fp=1, fn=0)
    assert report.per_label["1.1"] == Counts(tp=0, fp=0, fn=1)


def test_multi_label_pages(tmp_path):
    gold = {"1": ["1.1", "1.2", "1.3"], "2": ["1.1"]}
    sub = {"1": ["1.1", "1.2", "1.4"], "2": ["1.1", "1.2"]}
    report = score(tmp_path, gold, sub)
    assert (report.tp, report.fp, report.fn) == (3, 2, 1)
    assert report.f1 == pytest.approx(100 * 6 / 9)


def test_duplicate_labels_on_a_page_count_once(tmp_path):
    report = score(tmp_path, {"1": ["1.1"]}, {"1": ["1.1", "1.1"]})
    assert (report.tp, report.fp, report.fn) == (1, 0, 0)


def test_breakdown_by_top_level(tmp_path):
    sub = {"1": ["1.7.13.6"], "2": ["1.1"], "4": ["1.1"]}
    report = score(tmp_path, GOLD, sub, per_label=True)
    assert report.by_top_level == {"1": Counts(2, 1, 1), "2": Counts(0, 0, 1),
                                   "9": Counts(1, 0, 0)}
    assert sum(report.by_top_level.values(), Counts()) == report.counts
    assert report.per_label["1.1"] == Counts(1, 1, 0)
    csv_text = per_label_csv(report)
    assert csv_text.splitlines()[0].startswith("label,name,top_level,tp,fp,fn")
    assert "1.1,人名,1,1,1,0,1,50.0000,100.0000,66.6667" in csv_text


def test_per_label_only_on_request(tmp_path):
    assert score(tmp_path, GOLD, GOLD).per_label is None


def test_the_report_names_the_first_missing_pages_in_gold_order(tmp_path):
    gold = {str(i): ["1.1"] for i in range(20, 0, -1)}
    sub = {pid: ["1.1"] for pid in ["20", "18", "3"]}
    report = score(tmp_path, gold, sub, partition=lambda pid: "a" if int(pid) % 2 else "b")
    assert report.missing_pages == 17
    assert report.missing_examples == ("19", "17", "16", "15", "14")
    assert report.parts["b"].missing_examples == ("16", "14", "12", "10", "8")
    assert json.loads(json.dumps(report.to_dict()))["missing_examples"] == list(
        report.missing_examples)
    assert score(tmp_path, GOLD, GOLD).missing_examples == ()


def test_partition_splits_the_counts(tmp_path):
    sub = {"1": ["1.7.13.6"], "2": ["1.1"], "4": ["1.1"]}
    report = score(tmp_path, GOLD, sub, partition=lambda pid: "a" if pid in "12" else "b")
    a, b = report.parts["a"], report.parts["b"]
    assert (a.tp, a.fp, a.fn, a.pages) == (2, 0, 1, 2)
    assert (b.tp, b.fp, b.fn, b.pages, b.missing_pages) == (1, 1, 1, 2, 1)
    assert a.counts + b.counts == report.counts


def test_report_to_dict_is_json(tmp_path):
    d = score(tmp_path, GOLD, GOLD, per_label=True).to_dict()
    assert json.loads(json.dumps(d))["f1"] == 100.0
    assert d["by_top_level"]["1"]["tp"] == 3


def test_counts_arithmetic():
    c = Counts(tp=8715, fp=1000, fn=1570)  # F1 = 2·TP / (2·TP + FP + FN)
    assert c.f1 == pytest.approx(100 * 17430 / 20000)
    assert c.precision == pytest.approx(100 * 8715 / 9715)
    assert c.recall == pytest.approx(100 * 8715 / 10285)
    assert c + Counts(1, 2, 3) == Counts(8716, 1002, 1573)
    assert Counts().f1 == Counts().precision == Counts().recall == 0.0  # no labels at all


# --- our simple form ----------------------------------------------------------

def test_simple_form_with_any_labels(tmp_path):
    gold = write_simple(tmp_path / "g.jsonl", {"a": ["sports-watch"], "b": ["peachy"],
                                               "c": ["smax", "peachy"]})
    sub = write_simple(tmp_path / "s.jsonl", {"a": ["sports-watch"], "c": ["smax"]},
                       with_probs=True)
    report = score_files(gold, sub)
    # page b missing -> predicts nothing: FN peachy
    assert report.label_space == "any"
    assert (report.tp, report.fp, report.fn) == (2, 0, 2)
    assert report.by_top_level == {}


@pytest.mark.parametrize("first", ["shinra", "simple"])
def test_a_submission_mixing_the_two_forms_is_refused_as_gold_is(tmp_path, first):
    gold = write_gold(tmp_path / "g.jsonl", GOLD)
    shinra = write_submission(tmp_path / "a.jsonl", {"1": ["1.1"], "3": ["9"]}).read_text().splitlines()
    simple = write_simple(tmp_path / "b.jsonl", {"2": ["1.1"], "4": ["2.1"]}).read_text().splitlines()
    lines = shinra + simple if first == "shinra" else simple + shinra
    (tmp_path / "mixed.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(InvalidSubmission) as info:
        score_files(gold, tmp_path / "mixed.jsonl")
    assert [(e.line, e.reason) for e in info.value.errors] == [
        (3, "1 行目と形式が違います (ENEs と labels が混在しています)"),
        (4, "1 行目と形式が違います (ENEs と labels が混在しています)")]


def test_simple_gold_of_ene_ids_is_scored_as_shinra(tmp_path):
    # `bert-workshop data shinra` writes dev.jsonl in the simple form: scoring
    # against it is the SHINRA task (missing page -> IGNORED, per top level).
    gold = write_simple(tmp_path / "g.jsonl", {"1": ["1.1"], "2": ["1.1"], "3": ["9"]})
    sub = write_simple(tmp_path / "s.jsonl", {"1": ["1.1"], "2": ["1.2"]})
    report = score_files(gold, sub)
    assert report.label_space == "ene"
    assert (report.tp, report.fp, report.fn) == (2, 1, 1)  # page 3 missing -> "9": right
    assert report.by_top_level  # the per-top-level breakdown of ENE gold
    with pytest.raises(InvalidSubmission, match="ENE v9"):
        score_files(gold, write_simple(tmp_path / "x.jsonl", {"1": ["sports"]}))
    assert score_files(gold, sub, label_space="any").label_space == "any"
    # One label that is no ENE id: not SHINRA, any label goes.
    mixed = write_simple(tmp_path / "m.jsonl", {"1": ["1.1"], "2": ["sports"]})
    assert score_files(mixed, sub).label_space == "any"
    # "0", "1", "9" are ENE ids too (top level), but a 0/1 task is not SHINRA's.
    binary = write_simple(tmp_path / "b.jsonl", {"1": ["0"], "2": ["1"], "3": ["1"]})
    report = score_files(binary, write_simple(tmp_path / "b_sub.jsonl", {"1": ["0"], "2": ["1"]}))
    assert report.label_space == "any" and (report.tp, report.fp, report.fn) == (2, 0, 1)


def test_simple_submission_against_shinra_gold(tmp_path):
    gold = write_gold(tmp_path / "g.jsonl", GOLD)
    sub = write_simple(tmp_path / "s.jsonl", {pid: labels for pid, labels in GOLD.items()})
    assert score_files(gold, sub).f1 == 100.0
    bad = write_simple(tmp_path / "b.jsonl", {"1": ["sports"]})
    with pytest.raises(InvalidSubmission, match="ENE v9"):
        score_files(gold, bad)


def test_labels_ene_option_checks_simple_gold(tmp_path):
    gold = write_simple(tmp_path / "g.jsonl", {"1": ["1.1"], "2": ["9"]})
    sub = write_simple(tmp_path / "s.jsonl", {"1": ["1.1"]})
    report = score_files(gold, sub, label_space="ene")
    assert (report.tp, report.fp, report.fn) == (2, 0, 0)  # page 2 missing -> "9"
    with pytest.raises(InvalidSubmission):
        score_files(gold, write_simple(tmp_path / "x.jsonl", {"1": ["x"]}), label_space="ene")


def test_labels_any_option_skips_the_ene_check(tmp_path):
    gold = write_gold(tmp_path / "g.jsonl", {"1": ["1.1"]})
    sub = write_submission(tmp_path / "s.jsonl", {"1": ["not-an-ene"]})
    report = score_files(gold, sub, label_space="any")
    assert (report.tp, report.fp, report.fn) == (0, 1, 1)


# --- the scikit-learn cross-check ---------------------------------------------

LEAVES = sorted(ene.leaves(), key=ene.sort_key)[:12]
label_sets = st.lists(st.sampled_from(LEAVES), min_size=1, max_size=3, unique=True)


@st.composite
def cases(draw):
    n = draw(st.integers(1, 25))
    gold = {str(i): draw(label_sets) for i in range(n)}
    sub = {}
    for pid in gold:
        choice = draw(st.sampled_from(["copy", "random", "missing", "empty"]))
        if choice == "copy":
            sub[pid] = gold[pid]
        elif choice == "random":
            sub[pid] = draw(label_sets)
        elif choice == "empty":
            sub[pid] = []
    if not sub:  # an empty file is rejected, not scored
        sub["0"] = draw(label_sets)
    return gold, sub


def sklearn_scores(gold: dict, sub: dict):
    pids = sorted(gold)
    predicted = [sub.get(pid, ["9"]) for pid in pids]
    mlb = MultiLabelBinarizer().fit([gold[p] for p in pids] + predicted + [["9"]])
    y_true, y_pred = mlb.transform([gold[p] for p in pids]), mlb.transform(predicted)
    kwargs = {"average": "micro", "zero_division": 0}
    return tuple(100 * f(y_true, y_pred, **kwargs)
                 for f in (f1_score, precision_score, recall_score))


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=cases(), simple=st.booleans())
def test_matches_sklearn_micro_f1(tmp_path, case, simple):
    gold, sub = case
    gold_path = write_gold(tmp_path / "gold.jsonl", gold)
    writer = write_simple if simple else write_submission
    report = score_files(gold_path, writer(tmp_path / "sub.jsonl", sub))
    f1, precision, recall = sklearn_scores(gold, sub)
    assert report.f1 == pytest.approx(f1, abs=1e-9)
    assert report.precision == pytest.approx(precision, abs=1e-9)
    assert report.recall == pytest.approx(recall, abs=1e-9)
    assert report.pages == len(gold)


def test_matches_sklearn_on_a_larger_random_case(tmp_path):
    rng = random.Random(7)
    leaves = sorted(ene.leaves(), key=ene.sort_key)
    gold = {str(i): rng.sample(leaves, rng.choice([1, 1, 1, 2])) for i in range(3000)}
    sub = {pid: (labels if rng.random() < 0.7 else rng.sample(leaves, 1))
           for pid, labels in gold.items() if rng.random() < 0.97}
    report = score(tmp_path, gold, sub)
    assert report.f1 == pytest.approx(sklearn_scores(gold, sub)[0], abs=1e-9)


# --- bad input ----------------------------------------------------------------

def ok_line(pid="1", ene_id="1.1", prob=0.5, key=SYSTEM):
    return json.dumps({"page_id": pid, "ENEs": {key: [{"prob": prob, "ENE": ene_id}]}})


BAD_SUBMISSIONS = {
    "not UTF-8": (ok_line().encode() + b"\n" + b'{"page_id": "2", "title": "\xff"}\n', 2,
                  "UTF-8"),
    "not JSON": (ok_line() + "\n{page_id: 2}\n", 2, "JSON"),
    "not an object": (ok_line() + '\n["2"]\n', 2, "オブジェクト"),
    "no page_id": (ok_line() + '\n{"ENEs": {"%s": []}}\n' % SYSTEM, 2, "page_id"),
    "page_id not a string": (ok_line(pid=[2]) + "\n", 1, "page_id"),
    "duplicate page_id": (ok_line() + "\n" + ok_line() + "\n", 2, "重複"),
    "page not in gold": (ok_line(pid="404") + "\n", 1, "正解データにない"),
    "unknown ENE id": (ok_line(ene_id="1.99.99") + "\n", 1, "ENE v9"),
    "ENE not a string": (ok_line(ene_id=1.1) + "\n", 1, "文字列"),
    "prob above 1": (ok_line(prob=1.01) + "\n", 1, "[0, 1]"),
    "prob below 0": (ok_line(prob=-0.1) + "\n", 1, "[0, 1]"),
    "prob NaN": (ok_line(prob=math.nan) + "\n", 1, "[0, 1]"),
    "prob a string": (ok_line(prob="0.5") + "\n", 1, "数値"),
    "prob a bool": (ok_line(prob=True) + "\n", 1, "数値"),
    "prob missing": ('{"page_id": "1", "ENEs": {"%s": [{"ENE": "1.1"}]}}\n' % SYSTEM, 1,
                     "prob がありません"),
    "two AUTO keys": ('{"page_id": "1", "ENEs": {"AUTO.A.202207": [], "AUTO.B.202207": []}}\n',
                      1, "AUTO キーが 2 個"),
    "no AUTO key": ('{"page_id": "1", "ENEs": {}}\n', 1, "キーがありません"),
    "a HAND key": ('{"page_id": "1", "ENEs": {"HAND.AIP.202204": []}}\n', 1, "以外のキー"),
    "AUTO key in the wrong form": (ok_line(key="AUTO.MyBERT") + "\n", 1, "<yyyyMM>"),
    "AUTO key changes": (ok_line() + "\n" + ok_line(pid="2", key="AUTO.Other.202207") + "\n",
                         2, "1 行目"),
    "ENEs not an object": ('{"page_id": "1", "ENEs": []}\n', 1, "オブジェクト"),
    "entries not a list": ('{"page_id": "1", "ENEs": {"%s": {}}}\n' % SYSTEM, 1, "リスト"),
    "entry not an object": ('{"page_id": "1", "ENEs": {"%s": ["1.1"]}}\n' % SYSTEM, 1,
                            "の形"),
    "neither ENEs nor labels": ('{"page_id": "1"}\n', 1, "ENEs も labels も"),
    "probs out of range": ('{"page_id": "1", "labels": ["1.1"], "probs": [2]}\n', 1, "[0, 1]"),
    "UTF-16": ((ok_line() + "\n" + ok_line(pid="2") + "\n").encode("utf-16"), None, "UTF-16"),
    "empty file": (b"", None, "空のファイル"),
    "only blank lines": ("\n  \n\n", None, "空のファイル"),
}


@pytest.mark.parametrize("case", sorted(BAD_SUBMISSIONS))
def test_bad_submission_is_rejected_with_file_and_line(tmp_path, case):
    content, line, reason = BAD_SUBMISSIONS[case]
    gold = write_gold(tmp_path / "gold.jsonl", {"1": ["1.1"], "2": ["1.2"]})
    sub = tmp_path / "sub.jsonl"
    sub.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    with pytest.raises(InvalidSubmission) as info:
        score_files(gold, sub)
    err = info.value
    assert err.total == 1, err
    assert err.errors[0].line == line
    assert err.errors[0].path == str(sub)
    assert reason in err.errors[0].reason
    assert f"{sub}:{line}:" in str(err) if line else str(sub) in str(err)


def test_missing_file(tmp_path):
    gold = write_gold(tmp_path / "gold.jsonl", {"1": ["1.1"]})
    with pytest.raises(InvalidSubmission, match="開けません"):
        score_files(gold, tmp_path / "nope.jsonl")


@pytest.mark.parametrize("name, reason", [
    ("nope.jsonl", "ファイルを開けません: 見つかりません"),
    ("folder", "ファイルを開けません: フォルダです (ファイルを指定してください)"),
    ("file/sub.jsonl", "ファイルを開けません: 途中にフォルダでないものがあります"),
])
def test_a_file_that_cannot_be_opened_says_why_in_japanese(tmp_path, name, reason):
    gold = write_gold(tmp_path / "gold.jsonl", {"1": ["1.1"]})
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("")
    with pytest.raises(InvalidSubmission) as info:
        score_files(gold, tmp_path / name)
    assert [e.reason for e in info.value.errors] == [reason]


def test_byte_positions_are_counted_as_the_readers_count_them(tmp_path):
    """The scorer and the data readers of train/predict name the same byte of a
    line that is not UTF-8, counted from 1."""
    from solutions.data import read_records_checked

    gold = write_gold(tmp_path / "gold.jsonl", {"1": ["1.1"]})
    sub = tmp_path / "sub.jsonl"
    sub.write_bytes(b'{"page_id": "\x82"}\n' + ok_line().encode() + b"\n")
    with pytest.raises(InvalidSubmission) as info:
        score_files(gold, sub)
    _, errors = read_records_checked(sub)
    assert "14 バイト目" in info.value.errors[0].reason and "（14 バイト目）" in str(errors[0])


def test_errors_are_capped_then_counted(tmp_path):
    gold = write_gold(tmp_path / "gold.jsonl", {"1": ["1.1"]})
    sub = tmp_path / "sub.jsonl"
    sub.write_text("".join(ok_line(pid=str(100 + i)) + "\n" for i in range(30)))
    with pytest.raises(InvalidSubmission) as info:
        score_files(gold, sub, max_errors=5)
    assert len(info.value.errors) == 5 and info.value.total == 30
    assert [e.line for e in info.value.errors] == [1, 2, 3, 4, 5]
    assert "ほか 25 件" in str(info.value)


def test_tolerated_details(tmp_path):
    gold = write_gold(tmp_path / "gold.jsonl", {"1": ["1.1"], "2": ["1.2"]})
    sub = tmp_path / "sub.jsonl"
    # a UTF-8 BOM, blank lines, an integer page_id, spaces around the JSON, prob 0 and 1
    text = ("\ufeff" + ok_line(prob=1) + "\n\n  " + ok_line(pid=2, ene_id="1.2", prob=0)
            + "  \r\n\n")
    sub.write_text(text, encoding="utf-8")
    assert score_files(gold, sub).f1 == 100.0


def test_gzip_files(tmp_path):
    gold = write_gold(tmp_path / "gold.jsonl", GOLD)
    sub = write_submission(tmp_path / "sub.jsonl", GOLD)
    for path in (gold, sub):
        path.with_suffix(".jsonl.gz").write_bytes(gzip.compress(path.read_bytes()))
    report = score_files(tmp_path / "gold.jsonl.gz", tmp_path / "sub.jsonl.gz")
    assert report.f1 == 100.0
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(gzip.compress(sub.read_bytes())[:-12])
    with pytest.raises(InvalidSubmission, match="最後まで読めません"):
        score_files(gold, cut)


def test_empty_prediction_list_is_allowed(tmp_path):
    report = score(tmp_path, {"1": ["1.1"]}, {"1": []})
    assert (report.tp, report.fp, report.fn) == (0, 0, 1)
    assert report.missing_pages == 0


BAD_GOLD = {
    "duplicate": ('{"page_id": "1", "ENEs": {"HAND.A.1": [{"ENE": "1.1"}]}}\n' * 2, 2, "重複"),
    "no HAND key": ('{"page_id": "1", "ENEs": {}}\n', 1, "HAND"),
    "no labels": ('{"page_id": "1", "ENEs": {"HAND.A.1": []}}\n', 1, "空"),
    "unknown ENE": ('{"page_id": "1", "ENEs": {"HAND.A.1": [{"ENE": "7"}]}}\n', 1, "ENE v9"),
    "mixed forms": ('{"page_id": "1", "ENEs": {"HAND.A.1": [{"ENE": "1.1"}]}}\n'
                    '{"page_id": "2", "labels": ["1.1"]}\n', 2, "形式"),
    "empty": ("", None, "空のファイル"),
    "inputs given as gold": ('{"page_id": "1", "title": "a", "labels": []}\n'
                             '{"page_id": "2", "title": "b", "labels": []}\n', None, "入力ファイル"),
}


@pytest.mark.parametrize("case", sorted(BAD_GOLD))
def test_bad_gold_is_rejected(tmp_path, case):
    content, line, reason = BAD_GOLD[case]
    gold = tmp_path / "gold.jsonl"
    gold.write_text(content, encoding="utf-8")
    with pytest.raises(InvalidGold) as info:
        load_gold(gold)
    assert info.value.errors[0].line == line
    assert reason in info.value.errors[0].reason
    assert "正解ファイル" in str(info.value)


def test_simple_gold_may_have_pages_without_labels(tmp_path):
    gold = tmp_path / "gold.jsonl"
    gold.write_text('{"page_id": "1", "labels": []}\n{"page_id": "2", "labels": ["x"]}\n', encoding="utf-8")
    assert load_gold(gold).labels == {"1": frozenset(), "2": frozenset({"x"})}


def test_gold_may_carry_several_hand_keys(tmp_path):
    gold = tmp_path / "gold.jsonl"
    gold.write_text('{"page_id": "1", "ENEs": {"HAND.A.1": [{"ENE": "1.1"}], '
                    '"HAND.B.1": [{"ENE": "1.2"}]}}\n', encoding="utf-8")
    assert load_gold(gold).labels == {"1": frozenset({"1.1", "1.2"})}


# --- the command line -----------------------------------------------------------

def run_cli(argv):
    parser = argparse.ArgumentParser(prog="bert-workshop")
    cli.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return cli.run(args)


def test_cli_score(tmp_path, capsys):
    gold = write_gold(tmp_path / "gold.jsonl", GOLD)
    sub = write_submission(tmp_path / "sub.jsonl", {"1": ["1.7.13.6"], "2": ["1.1"],
                                                    "4": ["1.1"]})
    assert run_cli(["leaderboard", "score", str(gold), str(sub)]) == 0
    out = capsys.readouterr().out
    assert "Micro-F1: 66.6667" in out and "IGNORED" in out and "1 名前" in out


def test_cli_score_json_and_per_label_csv(tmp_path, capsys):
    gold = write_gold(tmp_path / "gold.jsonl", GOLD)
    sub = write_submission(tmp_path / "sub.jsonl", GOLD)
    csv_path = tmp_path / "per_label.csv"
    assert cli.main(["score", str(gold), str(sub), "--json", "--per-label", str(csv_path)]) == 0
    assert json.loads(capsys.readouterr().out)["f1"] == 100.0
    assert csv_path.read_text(encoding="utf-8").count("\n") == 1 + 5


def test_cli_score_rejects_with_errors_on_stderr(tmp_path, capsys):
    gold = write_gold(tmp_path / "gold.jsonl", GOLD)
    sub = tmp_path / "sub.jsonl"
    sub.write_text(ok_line(prob=3) + "\n" + "x\n" * 4)
    assert cli.main(["score", str(gold), str(sub), "--max-errors", "2"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"{sub}:1:" in captured.err and f"{sub}:2:" in captured.err
    assert "ほか 3 件" in captured.err


def test_cli_score_labels_any(tmp_path, capsys):
    gold = write_gold(tmp_path / "gold.jsonl", {"1": ["1.1"]})
    sub = write_simple(tmp_path / "sub.jsonl", {"1": ["anything"]})
    assert cli.main(["score", str(gold), str(sub)]) == 1
    assert cli.main(["score", "--labels-any", str(gold), str(sub)]) == 0


def test_cli_score_names_missing_pages(tmp_path, capsys):
    gold = write_gold(tmp_path / "gold.jsonl", GOLD)
    sub = write_submission(tmp_path / "sub.jsonl", {"1": ["1.7.13.6"], "4": ["2.1"]})
    assert cli.main(["score", str(gold), str(sub)]) == 0
    assert ("正解の 4 ページのうち 2 ページが提出にありません (page_id: 2, 3)。"
            "IGNORED (9) と予測したものとして採点しました") in capsys.readouterr().out


def test_workshop_score_command_has_the_label_options(tmp_path, capsys):
    from autograder import cli as workshop_cli

    gold = write_simple(tmp_path / "dev.jsonl", {"1": ["1.1"], "2": ["1.2"]})
    sub = write_simple(tmp_path / "sub.jsonl", {"1": ["1.1"]})
    assert workshop_cli.main(["score", str(gold), str(sub)]) == 0
    shinra = json.loads(capsys.readouterr().out)
    assert shinra["label_space"] == "ene" and shinra["fp"] == 1  # page 2 missing -> "9"
    assert workshop_cli.main(["score", "--labels-any", str(gold), str(sub)]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert plain["label_space"] == "any" and plain["fp"] == 0 and plain["fn"] == 1


def test_a_prediction_with_no_label_in_common_with_the_gold_is_pointed_out(tmp_path, capsys):
    from autograder import cli as workshop_cli

    gold = write_simple(tmp_path / "dev.jsonl", {"1": ["sports"], "2": ["news"]})
    names = write_simple(tmp_path / "ids.jsonl", {"1": ["1.1"], "2": ["1.2"]})  # ids against names
    assert workshop_cli.main(["score", str(gold), str(names)]) == 0
    assert "正解と一致した予測ラベルが 1 つもありません" in capsys.readouterr().err
    right = write_simple(tmp_path / "right.jsonl", {"1": ["sports"], "2": ["sports"]})
    assert workshop_cli.main(["score", str(gold), str(right)]) == 0
    assert "1 つもありません" not in capsys.readouterr().err


def test_cli_help_explains_missing_pages(capsys):
    with pytest.raises(SystemExit):
        cli.main(["score", "--help"])
    out = capsys.readouterr().out
    assert "IGNORED" in out and "提出にないページ" in out
