"""SHINRA 2022: official-format files made here, read back and joined with the dump."""
import datetime
import gzip
import json
import warnings

import pytest

from solutions.data import (
    DataError,
    Record,
    count_input_pages,
    iter_cirrus_texts,
    read_shinra,
    read_shinra_annotations,
    read_shinra_inputs,
    write_cirrus_dump,
    write_shinra_inputs,
    write_shinra_submission,
    write_shinra_training_file,
)

# (page_id, title, labels): page 105 has two labels, page 108 is not in the dump.
TRAIN = [
    ("101", "霧浜市", ["1.5.1.1"]),
    ("102", "松崎健太", ["1.1"]),
    ("103", "白川", ["1.5.3.4"]),
    ("104", "星の庭", ["1.7.13.3"]),
    ("105", "雨の列車", ["1.7.14.3", "1.7.13.3"]),
    ("106", "青葉大学", ["1.6.4.7"]),
    ("107", "赤岳", ["1.5.3.2"]),
    ("108", "消えたページ", ["1.1"]),
]
INPUTS = [("201", "桜台駅"), ("202", "ない記事"), ("101", "霧浜市")]


def text_of(page_id):
    return f"ページ {page_id} の本文。改行も\n含む。"


@pytest.fixture
def shinra(tmp_path):
    """Training file, leaderboard inputs and a gzip dump, all in the official formats."""
    in_dump = [p for p in TRAIN if p[0] != "108"] + [("201", "桜台駅", None), ("999", "関係ない", None)]
    write_shinra_training_file(tmp_path / "train.jsonl", TRAIN)
    write_shinra_inputs(tmp_path / "leaderboard.jsonl", INPUTS)
    write_cirrus_dump(tmp_path / "dump.json.gz", [(p[0], p[1], text_of(p[0])) for p in in_dump])
    return tmp_path


def test_training_file_is_in_the_official_format(shinra):
    first = json.loads((shinra / "train.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert first == {"page_id": "101", "title": "霧浜市",
                     "ENEs": {"HAND.AIP.202204": [{"prob": 1, "ENE": "1.5.1.1"}]}}
    inputs = [json.loads(line) for line in (shinra / "leaderboard.jsonl").read_text(encoding="utf-8").splitlines()]
    assert inputs[0] == {"page_id": "201", "title": "桜台駅", "ENEs": {}}


def test_dump_is_pairs_of_lines(shinra):
    lines = gzip.decompress((shinra / "dump.json.gz").read_bytes()).decode().splitlines()
    assert len(lines) == 2 * 9
    assert json.loads(lines[0]) == {"index": {"_type": "page", "_id": "101"}}
    page = json.loads(lines[1])
    assert page["title"] == "霧浜市" and page["text"] == text_of("101")


def test_annotations_are_read_back(shinra):
    assert list(read_shinra_annotations(shinra / "train.jsonl")) == TRAIN


def test_join_with_the_dump_drops_missing_pages_with_a_warning(shinra):
    with pytest.warns(UserWarning, match="108"):
        records = read_shinra(shinra / "train.jsonl", shinra / "dump.json.gz")
    expected = [Record(p, t, text_of(p), labels) for p, t, labels in TRAIN if p != "108"]
    assert records == expected


def test_single_label_and_sample(shinra):
    with pytest.warns(UserWarning, match="108"):
        full = read_shinra(shinra / "train.jsonl", shinra / "dump.json.gz", single_label=True)
    assert "105" not in {r.page_id for r in full} and all(len(r.labels) == 1 for r in full)
    samples = []
    for seed in [0, 0, 1, 2, 3]:
        with warnings.catch_warnings():  # page 108 may be drawn
            warnings.simplefilter("ignore")
            samples.append(read_shinra(shinra / "train.jsonl", shinra / "dump.json.gz",
                                       sample=4, single_label=True, seed=seed))
    assert samples[0] == samples[1]
    assert len({tuple(r.page_id for r in s) for s in samples}) > 1
    order = [p[0] for p in TRAIN]
    for sample in samples:
        ids = [r.page_id for r in sample]
        assert len(ids) in (3, 4)  # 4 drawn; page 108 has no text
        assert set(ids) <= {r.page_id for r in full} and ids == sorted(ids, key=order.index)


def test_sample_larger_than_data_keeps_everything(shinra):
    with pytest.warns(UserWarning):
        records = read_shinra(shinra / "train.jsonl", shinra / "dump.json.gz", sample=100)
    assert len(records) == 7


def test_inputs_get_their_text_and_keep_every_page(shinra):
    with pytest.warns(UserWarning, match="202"):
        records = list(read_shinra_inputs(shinra / "leaderboard.jsonl", shinra / "dump.json.gz"))
    assert sorted(r.page_id for r in records) == ["101", "201", "202"]  # each input page once
    by_id = {r.page_id: r for r in records}
    assert by_id["201"] == Record("201", "桜台駅", text_of("201"), [])
    assert records[-1].page_id == "202" and records[-1].text == "ない記事"  # not in the dump: last, title as text


def test_submission_format_and_read_back(shinra):
    rows = [("201", "桜台駅", [("1.6.5.2", 0.94)]), ("202", "ない記事", []),
            ("101", "霧浜市", [("1.5.1.1", 0.7), ("1.5.3.3", 0.6)])]
    path = shinra / "submission.jsonl"
    write_shinra_submission(path, rows, system="MyBERT", yyyymm="202207")
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert lines[0] == {"page_id": "201", "title": "桜台駅",
                        "ENEs": {"AUTO.MyBERT.202207": [{"prob": 0.94, "ENE": "1.6.5.2"}]}}
    assert lines[1]["ENEs"] == {"AUTO.MyBERT.202207": []}
    assert list(read_shinra_annotations(path, key_prefix="AUTO.")) == [
        ("201", "桜台駅", ["1.6.5.2"]), ("202", "ない記事", []), ("101", "霧浜市", ["1.5.1.1", "1.5.3.3"])]


def test_submission_key_defaults_to_this_month(tmp_path):
    path = tmp_path / "s.jsonl"
    write_shinra_submission(path, [("1", "t", [("1.1", 1.0)])], system="Team-1")
    key = next(iter(json.loads(path.read_text(encoding="utf-8"))["ENEs"]))
    assert key == "AUTO.Team-1." + datetime.date.today().strftime("%Y%m")
    with pytest.raises(ValueError):
        write_shinra_submission(path, [], system="My.BERT")
    with pytest.raises(ValueError):
        write_shinra_submission(path, [], yyyymm="2022-07")


@pytest.mark.parametrize("enes, words", [
    ({}, "HAND"),
    ({"HAND.A.1": [{"prob": 1, "ENE": "1.1"}], "HAND.B.2": [{"prob": 1, "ENE": "1.1"}]}, "2 個"),
    ({"HAND.A.1": [{"prob": 1}]}, "ENE"),
    ({"HAND.A.1": []}, "1 つもありません"),
])
def test_a_bad_annotation_is_warned_with_line_and_field_and_the_other_pages_are_read(tmp_path, enes, words):
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps({"page_id": "1", "title": "t", "ENEs": {"HAND.A.1": [{"prob": 1, "ENE": "1.1"}]}})
                    + "\n" + json.dumps({"page_id": "2", "title": "t", "ENEs": enes}) + "\n", encoding="utf-8")
    with pytest.warns(UserWarning) as caught:
        pages = read_shinra_annotations(path)
    assert pages == [("1", "t", ["1.1"])]
    (message,) = [str(w.message) for w in caught]
    assert message.startswith(f"{path}:2: 'ENEs") and words in message and message.endswith(" (この行は使いません)")


def many_pages(n=2000):
    return [(str(i), f"題{i}", f"{i} 番目のページ本文。" * 30) for i in range(1, n + 1)]


def test_dump_reads_plain_files_and_filters_ids(tmp_path):
    pages = many_pages(50)
    write_cirrus_dump(tmp_path / "dump.json", pages)
    assert list(iter_cirrus_texts(tmp_path / "dump.json")) == [(p, text) for p, _, text in pages]
    assert list(iter_cirrus_texts(tmp_path / "dump.json", ["7", "3", "404"])) == [
        ("3", pages[2][2]), ("7", pages[6][2])]
    assert list(iter_cirrus_texts(tmp_path / "dump.json", [])) == []


def read_until_error(path, page_ids=None):
    seen = []
    with pytest.raises(DataError) as info:
        for item in iter_cirrus_texts(path, page_ids):
            seen.append(item)
    return seen, info.value


def test_cut_gzip_dump_yields_complete_pages_then_fails(tmp_path):
    pages = many_pages()
    write_cirrus_dump(tmp_path / "dump.json.gz", pages)
    data = (tmp_path / "dump.json.gz").read_bytes()
    cut = tmp_path / "cut.json.gz"
    cut.write_bytes(data[: len(data) // 2])
    seen, error = read_until_error(cut)
    assert 0 < len(seen) < len(pages)
    assert seen == [(p, text) for p, _, text in pages[: len(seen)]]
    assert error.path == str(cut) and error.line > 2 * len(seen) and "gzip" in str(error)
    # pages wanted from before the cut are all found: no error
    assert [p for p, _ in iter_cirrus_texts(cut, ["1", "2"])] == ["1", "2"]


def test_half_a_line_at_the_end_of_the_dump(tmp_path):
    pages = many_pages(20)
    write_cirrus_dump(tmp_path / "dump.json", pages)
    data = (tmp_path / "dump.json").read_bytes()
    (tmp_path / "dump.json").write_bytes(data[: -len(pages[-1][2].encode()) // 2])
    seen, error = read_until_error(tmp_path / "dump.json")
    assert seen == [(p, text) for p, _, text in pages[:-1]]
    assert error.line == 40 and "途中で切れています" in str(error)


def test_index_line_without_its_page(tmp_path):
    pages = many_pages(5)
    write_cirrus_dump(tmp_path / "dump.json", pages)
    lines = (tmp_path / "dump.json").read_text(encoding="utf-8").splitlines(keepends=True)
    (tmp_path / "dump.json").write_text("".join(lines[:-1]), encoding="utf-8")
    seen, error = read_until_error(tmp_path / "dump.json")
    assert len(seen) == 4 and error.line == 10 and "途中で切れています" in str(error)


def test_a_dump_of_only_bad_lines_is_an_error_after_saying_each_line(tmp_path):
    path = tmp_path / "dump.json"
    path.write_text('{"index": {"_type": "page"}}\n{"text": "本文"}\n', encoding="utf-8")
    with pytest.warns(UserWarning) as caught:
        seen, error = read_until_error(path)
    assert seen == [] and "ページが 1 件もありません" in str(error) and error.path == str(path)
    assert [str(w.message) for w in caught] == [
        f"{path}:1: インデックス行に 'index._id' がありません (このページは使いません)",
        f"{path}:2: インデックス行のないページの行です (この行は使いません)"]


def dump_lines(tmp_path, n=6):
    """A dump of ``n`` pages as a list of its lines (index line, page line, ...)."""
    write_cirrus_dump(tmp_path / "dump.json", many_pages(n))
    return (tmp_path / "dump.json").read_text(encoding="utf-8").splitlines(keepends=True)


def read_with_warnings(path, page_ids=None):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pages = [page_id for page_id, _ in iter_cirrus_texts(path, page_ids)]
    return pages, [str(w.message) for w in caught]


@pytest.mark.parametrize("line, why", [
    ('{"namespace": 0, "text": "半分\n', "JSON として読めません"),            # page 2's line: broken JSON
    ('{"namespace": 0, "text": ["本文"]}\n', "'text' は文字列でなければなりません"),
])
def test_a_bad_page_line_inside_the_dump_loses_only_its_page(tmp_path, line, why):
    lines = dump_lines(tmp_path)
    lines[3] = line
    path = tmp_path / "dump.json"
    path.write_text("".join(lines), encoding="utf-8")
    for wanted in (None, ["2", "5"]):
        pages, said = read_with_warnings(path, wanted)
        assert pages == (["1", "3", "4", "5", "6"] if wanted is None else ["5"])
        assert len(said) == 1 and said[0].startswith(f"{path}:4: ") and why in said[0]
        assert said[0].endswith("(このページは使いません)")


def test_broken_pairs_inside_the_dump_are_skipped_and_the_rest_read(tmp_path):
    lines = [line.encode("utf-8") for line in dump_lines(tmp_path, 8)]
    path = tmp_path / "dump.json"
    path.write_bytes(b"".join(
        lines[:2]                                      # page 1: good
        + [lines[2]]                                   # page 2: its page line is missing
        + [b'{"index": oops}\n', lines[5]]             # page 3: a broken index line
        + ['{"namespace": 0, "text": "迷子"}\n'.encode()]  # a page line with no index line
        + lines[6:8]                                   # page 4: good
        + [lines[8], b'{"text": "\xff"}\n']           # page 5: its page line is not UTF-8
        + lines[10:]))                                 # pages 6-8: good
    pages, said = read_with_warnings(path)
    assert pages == ["1", "4", "6", "7", "8"]
    assert [message.split(": ")[0] for message in said] == [f"{path}:{n}" for n in (3, 4, 5, 6, 10)]
    assert "インデックス行の次にページの行がありません" in said[0] and "JSON として読めません" in said[1]
    assert "インデックス行のないページの行です" in said[2] and "インデックス行のないページの行です" in said[3]
    assert "UTF-8" in said[4]
    # pages wanted after the damage are found too
    assert read_with_warnings(path, ["7"])[0] == ["7"]


def test_index_lines_are_found_whatever_their_spacing(tmp_path):
    """Elasticsearch's bulk format as Wikimedia writes it has no spaces; other writers add them."""
    path = tmp_path / "dump.json"
    path.write_text('{"index":{"_type":"_doc","_id":"12"}}\n{"text":"a"}\n'
                    '{ "index" : {"_id": "13"}}\n{"text": "b"}\n', encoding="utf-8")
    assert read_with_warnings(path) == (["12", "13"], [])


def test_a_dump_cut_inside_a_character_is_cut_not_a_bad_line(tmp_path):
    path = tmp_path / "dump.json"
    path.write_bytes("".join(f'{{"index": {{"_id": "{i}"}}}}\n{{"text": "本文{i}です"}}\n' for i in (1, 2, 3))
                     .encode("utf-8")[:-4])  # inside the last page's last character (3 bytes, then '"}\\n')
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing is only warned about
        seen, error = read_until_error(path)
    assert [p for p, _ in seen] == ["1", "2"] and error.line == 6 and "途中で切れています" in str(error)


def test_a_cut_last_page_is_an_error_even_when_nobody_asked_for_it(tmp_path):
    path = tmp_path / "dump.json"
    write_cirrus_dump(path, many_pages(3))
    path.write_bytes(path.read_bytes()[:-20])
    seen, error = read_until_error(path, ["1", "404"])
    assert [p for p, _ in seen] == ["1"] and error.line == 6 and "途中で切れています" in str(error)


def test_a_dump_whose_every_page_line_is_bad_is_an_error(tmp_path):
    lines = dump_lines(tmp_path, 2)
    lines[1] = lines[3] = '{"namespace": 0, "text": ["本文"]}\n'
    path = tmp_path / "dump.json"
    path.write_text("".join(lines), encoding="utf-8")
    with pytest.warns(UserWarning):
        seen, error = read_until_error(path)
    assert seen == [] and "ページが 1 件もありません" in str(error) and error.line is None


def test_a_file_that_is_no_dump_is_not_read_to_its_end(tmp_path, monkeypatch):
    import solutions.data.shinra as shinra_module
    monkeypatch.setattr(shinra_module, "MAX_BAD_LINES_BEFORE_A_PAGE", 10)
    path = tmp_path / "dump.json"
    path.write_text('{"page_id": "1", "title": "t"}\n' * 100 + '{"index": {"_id": "1"}}\n{"text": "a"}\n',
                    encoding="utf-8")
    with pytest.warns(UserWarning):
        seen, error = read_until_error(path)
    assert seen == [] and "CirrusSearch のダンプではないようです（最初の 10 行に" in str(error)


def test_a_pages_lost_line_reaches_the_joined_records_as_a_missing_page(shinra, tmp_path):
    lines = gzip.decompress((shinra / "dump.json.gz").read_bytes()).decode().splitlines(keepends=True)
    lines[3] = "{broken\n"  # page 102's line
    (tmp_path / "dump.json").write_text("".join(lines), encoding="utf-8")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        records = read_shinra(shinra / "train.jsonl", tmp_path / "dump.json")
    assert [r.page_id for r in records] == ["101", "103", "104", "105", "106", "107"]
    said = [str(w.message) for w in caught]
    assert any(m.startswith(f"{tmp_path / 'dump.json'}:4: ") for m in said)
    assert any("102" in m and "108" in m for m in said)  # both missing, said together


def test_inputs_are_streamed_from_the_dump(tmp_path):
    """No text is held back: a page comes out as soon as the dump has given it
    (here before the dump turns out to be cut short)."""
    write_shinra_inputs(tmp_path / "inputs.jsonl", [("201", "桜台駅"), ("101", "霧浜市")])
    write_cirrus_dump(tmp_path / "dump.json", [("201", "桜台駅", text_of("201")), ("5", "他", "他の記事")])
    with open(tmp_path / "dump.json", "a", encoding="utf-8") as f:
        f.write(json.dumps({"index": {"_id": "101"}}) + "\n")  # its page line is missing
    pages = read_shinra_inputs(tmp_path / "inputs.jsonl", tmp_path / "dump.json")
    assert next(pages) == Record("201", "桜台駅", text_of("201"), [])
    with pytest.raises(DataError, match="途中で切れています"):
        next(pages)


def write_official_lines(path, lines):
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line, ensure_ascii=False)) + "\n"
                            for line in lines), encoding="utf-8")
    return path


def annotation(page_id, *labels, key="HAND.AIP.202204"):
    return {"page_id": page_id, "title": f"題{page_id}", "ENEs": {key: [{"prob": 1, "ENE": x} for x in labels]}}


def test_a_page_on_two_lines_is_kept_once_so_it_cannot_be_in_train_and_dev(tmp_path):
    """A page twice in the training file would have gone once to train and once to dev."""
    path = write_official_lines(tmp_path / "train.jsonl", [
        annotation("1", "1.1"), annotation("2", "1.2"), annotation("1", "1.1"), annotation("2", "1.5.1.1")])
    write_cirrus_dump(tmp_path / "dump.json", [("1", "題1", "本文1"), ("2", "題2", "本文2")])
    with pytest.warns(UserWarning) as caught:
        records = read_shinra(path, tmp_path / "dump.json")
    assert records == [Record("1", "題1", "本文1", ["1.1"]), Record("2", "題2", "本文2", ["1.2", "1.5.1.1"])]
    messages = [str(w.message) for w in caught]
    assert messages[0].startswith(f"{path}:3: 'page_id' \"1\" が重複しています（最初は 1 行目）")
    assert messages[1].startswith(f"{path}:4: 'page_id' \"2\" が重複しています（最初は 2 行目）")
    assert "ラベルをまとめて" in messages[1] and "ラベルをまとめて" not in messages[0]


def test_a_broken_line_of_the_training_file_is_warned_and_the_rest_is_read(tmp_path):
    path = write_official_lines(tmp_path / "train.jsonl", [annotation("1", "1.1"), "{broken", annotation(7, "1.2")])
    write_cirrus_dump(tmp_path / "dump.json", [("1", "題1", "本文1"), ("7", "題7", "本文7")])
    with pytest.warns(UserWarning, match=f"{path}:2: JSON として読めません.*この行は使いません"):
        records = read_shinra(path, tmp_path / "dump.json")
    assert [r.page_id for r in records] == ["1", "7"]  # an integer page_id is taken as its digits, as the scorer does


def test_a_training_file_without_a_good_line_is_an_error(tmp_path):
    path = write_official_lines(tmp_path / "train.jsonl", ["{broken", annotation("2")])
    with warnings.catch_warnings(record=True), pytest.raises(DataError, match="2 行すべてにエラーがあります"):
        read_shinra_annotations(path)


def test_a_broken_input_line_is_warned_and_every_other_page_is_read(tmp_path):
    inputs = write_official_lines(tmp_path / "inputs.jsonl", [
        {"page_id": "201", "title": "桜台駅", "ENEs": {}}, {"page_id": "1"}, {"page_id": "202"}, "{broken",
        {"page_id": 203, "title": "数の ID"}])
    with open(inputs, "ab") as f:
        f.write('{"page_id": "204", "title": "シフト JIS"}\n'.encode("cp932"))
    write_cirrus_dump(tmp_path / "dump.json", [("201", "桜台駅", text_of("201")), ("203", "数の ID", text_of("203"))])
    assert count_input_pages(inputs) == 4
    with pytest.warns(UserWarning) as caught:
        records = list(read_shinra_inputs(inputs, tmp_path / "dump.json"))
    assert [r.page_id for r in records] == ["201", "203", "1", "202"]
    messages = [str(w.message) for w in caught]
    assert messages[0].startswith(f"{inputs}:4: JSON として読めません") and "この行は使いません" in messages[0]
    assert messages[1].startswith(f"{inputs}:6: UTF-8 として読めません（30 バイト目）")  # counted from 1
    assert len(messages) == 3 and "1, 202" in messages[2]  # the pages without text in the dump


def test_many_bad_lines_are_warned_one_by_one_then_counted(tmp_path):
    inputs = write_official_lines(tmp_path / "inputs.jsonl", [{"page_id": "1"}] + ["{broken"] * 25)
    write_cirrus_dump(tmp_path / "dump.json", [("1", "題1", "本文1")])
    with pytest.warns(UserWarning) as caught:
        assert [r.page_id for r in read_shinra_inputs(inputs, tmp_path / "dump.json")] == ["1"]
    messages = [str(w.message) for w in caught]
    assert len(messages) == 21 and messages[-1] == f"{inputs}: ほかに 5 行に同じような問題があります"


def test_an_input_file_without_a_good_page_is_an_error(tmp_path):
    """As for a training file: every line broken is not an empty task."""
    inputs = write_official_lines(tmp_path / "inputs.jsonl", ["{broken", "{broken"])
    write_cirrus_dump(tmp_path / "dump.json", [("1", "題1", "本文1")])
    for read in (lambda: count_input_pages(inputs), lambda: list(read_shinra_inputs(inputs, tmp_path / "dump.json"))):
        with pytest.warns(UserWarning) as caught:
            with pytest.raises(DataError, match=r"inputs\.jsonl: ページが 1 件もありません（2 行すべてにエラーがあります）"):
                read()
        # which lines, and why, before the error
        assert [str(w.message).split("JSON")[0] for w in caught] == [f"{inputs}:1: ", f"{inputs}:2: "]
