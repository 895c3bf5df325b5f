"""The common JSONL record form: errors that name file:line:field, writing, splits."""
import gzip
import json
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solutions.data import (
    DataError,
    Record,
    iter_records_or_errors,
    label_set,
    read_jsonl,
    read_records_checked,
    split_train_dev,
    write_jsonl,
)


def write_lines(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def good(page_id, text="本文です。", labels=("1.1",)):
    return json.dumps({"page_id": page_id, "title": f"題{page_id}", "text": text, "labels": list(labels)},
                      ensure_ascii=False)


def first_error(path, **kwargs):
    with pytest.raises(DataError) as info:
        list(read_jsonl(path, **kwargs))
    return info.value


def test_reads_good_lines_and_skips_blank_ones(tmp_path):
    path = write_lines(tmp_path / "train.jsonl", [good("1"), "", good("2", labels=())])
    records = list(read_jsonl(path))
    assert records == [Record("1", "題1", "本文です。", ["1.1"]), Record("2", "題2", "本文です。", [])]


def test_title_and_labels_may_be_absent(tmp_path):
    path = write_lines(tmp_path / "in.jsonl", ['{"page_id": "7", "text": "本文"}'])
    assert list(read_jsonl(path)) == [Record("7", "", "本文", [])]


def test_malformed_line_names_file_and_line(tmp_path):
    path = write_lines(tmp_path / "train.jsonl", [good("1"), '{"page_id": "2", "text": '])
    error = first_error(path)
    assert str(error).startswith(f"{path}:2: ")
    assert (error.path, error.line) == (str(path), 2)
    assert "JSON" in str(error)


@pytest.mark.parametrize("line, field, words", [
    ('{"page_id": "2", "title": "t"}', "text", "'text' がありません"),
    ('{"page_id": "2", "text": "   "}', "text", "'text' が空です"),
    ('{"title": "t", "text": "本文"}', "page_id", "'page_id' がありません"),
    ('{"page_id": 2.5, "text": "本文"}', "page_id", "'page_id' は文字列"),  # an integer is taken as its digits
    ('{"page_id": "2", "text": ["本文"]}', "text", "'text' は文字列"),
    ('{"page_id": "2", "title": 5, "text": "本文"}', "title", "'title' は文字列"),
    ('{"page_id": "2", "text": "本文", "labels": "1.1"}', "labels", "'labels' は"),
    ('{"page_id": "2", "text": "本文", "labels": [1]}', "labels", "'labels' は"),
    ('["2", "本文"]', None, "JSON オブジェクト"),
])
def test_bad_field_names_file_line_and_field(tmp_path, line, field, words):
    path = write_lines(tmp_path / "train.jsonl", [good("1"), line])
    error = first_error(path)
    assert str(error).startswith(f"{path}:2: ")
    assert words in str(error)
    assert error.field == field


def test_missing_labels_only_matter_when_required(tmp_path):
    path = write_lines(tmp_path / "train.jsonl", [good("1"), good("2", labels=())])
    assert len(list(read_jsonl(path))) == 2
    error = first_error(path, require_labels=True)
    assert (error.line, error.field) == (2, "labels") and "'labels' が空です" in str(error)
    absent = write_lines(tmp_path / "absent.jsonl", [good("1"), '{"page_id": "2", "text": "本文"}'])
    assert "'labels' がありません" in str(first_error(absent, require_labels=True))


def test_empty_file_is_an_error(tmp_path):
    for content in ["", "\n  \n"]:
        path = tmp_path / "empty.jsonl"
        path.write_text(content, encoding="utf-8")
        error = first_error(path)
        assert str(error).startswith(f"{path}: ")
        assert "空" in str(error)


def test_duplicate_page_id_is_an_error(tmp_path):
    path = write_lines(tmp_path / "train.jsonl", [good("1"), good("2"), good("1")])
    error = first_error(path)
    assert (error.line, error.field) == (3, "page_id")
    assert "1 行目" in str(error)


def test_cut_last_line_says_so(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text(good("1") + "\n" + good("2")[:20], encoding="utf-8")
    error = first_error(path)
    assert error.line == 2 and "途中で切れています" in str(error)


def test_non_utf8_line_is_an_error(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_bytes((good("1") + "\n").encode() + '{"page_id": "2", "text": "本文"}\n'.encode("cp932"))
    error = first_error(path)
    assert error.line == 2 and "UTF-8" in str(error)


def test_a_non_utf8_line_does_not_lose_the_lines_after_it(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_bytes((good("1") + "\n").encode() + '{"page_id": "2", "text": "本文"}\n'.encode("cp932")
                     + (good("3") + "\n").encode())
    records, errors = read_records_checked(path)
    assert [r.page_id for r in records] == ["1", "3"]
    assert [e.line for e in errors] == [2] and "UTF-8" in str(errors[0])


def test_a_file_of_bad_lines_is_not_called_empty(tmp_path):
    records, errors = read_records_checked(write_lines(tmp_path / "train.jsonl", ["{oops", '{"page_id": "2"}']))
    assert records == [] and "2 行すべてにエラー" in str(errors[-1]) and "空のファイル" not in str(errors[-1])


def test_missing_file_is_a_data_error(tmp_path):
    error = first_error(tmp_path / "nothing.jsonl")
    assert "見つかりません" in str(error)


def test_checked_reading_keeps_good_lines_and_every_error(tmp_path):
    lines = [good("1"), "{oops", good("3"), '{"page_id": "4"}', good("5"), good("3")]
    records, errors = read_records_checked(write_lines(tmp_path / "train.jsonl", lines))
    assert [r.page_id for r in records] == ["1", "3", "5"]
    assert [(e.line, e.field) for e in errors] == [(2, None), (4, "text"), (6, "page_id")]


def test_checked_reading_counts_errors_beyond_max(tmp_path):
    lines = [good("0")] + ['{"page_id": "x"}'] * 30
    records, errors = read_records_checked(write_lines(tmp_path / "train.jsonl", lines), max_errors=5)
    assert len(records) == 1
    assert len(errors) == 6 and "25 件" in str(errors[-1])
    _, all_errors = read_records_checked(tmp_path / "train.jsonl", max_errors=None)
    assert len(all_errors) == 30


def test_checked_reading_of_empty_file(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("", encoding="utf-8")
    records, errors = read_records_checked(path)
    assert records == [] and len(errors) == 1


RECORDS = st.lists(
    st.builds(
        Record,
        page_id=st.from_regex(r"[0-9]{1,8}", fullmatch=True),
        title=st.text(max_size=20),
        text=st.text(min_size=1, max_size=60).filter(str.strip),
        labels=st.lists(st.sampled_from(["1.1", "1.5.1.1", "1.7.13.3"]), max_size=2, unique=True),
    ),
    min_size=1, max_size=8, unique_by=lambda r: r.page_id,
)


@settings(max_examples=40, deadline=None)
@given(records=RECORDS)
def test_write_then_read_gives_the_same_records(tmp_path_factory, records):
    folder = tmp_path_factory.mktemp("roundtrip")
    for name in ["out.jsonl", "out.jsonl.gz"]:
        write_jsonl(folder / name, records)
        assert list(read_jsonl(folder / name)) == records


def test_gzip_file_is_gzip_and_cut_stream_keeps_complete_records(tmp_path):
    records = [Record(str(i), f"題{i}", f"本文{i}。" * 40, ["1.1"]) for i in range(3000)]
    path = tmp_path / "big.jsonl.gz"
    write_jsonl(path, records)
    assert gzip.decompress(path.read_bytes()).count(b"\n") == 3000
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    seen = []
    with pytest.raises(DataError) as info:
        for record in read_jsonl(cut):
            seen.append(record)
    assert 0 < len(seen) < 3000 and seen == records[: len(seen)]
    assert info.value.line == len(seen) + 1 and "gzip" in str(info.value)


def test_write_is_atomic(tmp_path):
    path = tmp_path / "out.jsonl"
    write_jsonl(path, [Record("1", "t", "本文")])
    before = path.read_bytes()

    def failing():
        yield Record("2", "t", "本文")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        write_jsonl(path, failing())
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]


def test_write_creates_the_folder(tmp_path):
    path = tmp_path / "a" / "b" / "out.jsonl"
    write_jsonl(path, [Record("1", "t", "本文", ["1.1"])])
    assert json.loads(path.read_text(encoding="utf-8")) == {
        "page_id": "1", "title": "t", "text": "本文", "labels": ["1.1"]}


def test_a_write_error_names_the_file_not_its_temporary_twin(tmp_path):
    (tmp_path / "train.jsonl").mkdir()
    with pytest.raises(IsADirectoryError) as info:
        write_jsonl(tmp_path / "train.jsonl", [Record("1", "t", "本文")])
    assert info.value.filename == str(tmp_path / "train.jsonl")
    assert [p.name for p in tmp_path.iterdir()] == ["train.jsonl"]  # the temporary file is gone


def test_a_page_to_predict_needs_no_labels_and_may_have_an_integer_id(tmp_path):
    """Prediction reads page_id, title and text only; an integer page_id is its
    digits, as the scorer takes it."""
    path = write_lines(tmp_path / "pages.jsonl", [
        json.dumps({"page_id": "1", "text": "本文", "labels": "1.5.1.1"}),
        json.dumps({"page_id": 2, "text": "本文", "labels": [7]})])
    assert [r.page_id for r in iter_records_or_errors(path, ignore_labels=True)] == ["1", "2"]
    assert all(r.labels == [] for r in iter_records_or_errors(path, ignore_labels=True))
    errors = list(iter_records_or_errors(path))  # labels are read otherwise
    assert [(e.line, e.field) for e in errors[:2]] == [(1, "labels"), (2, "labels")]


def test_a_utf16_file_is_reported_once_for_the_whole_file(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text("".join(good(str(i)) + "\n" for i in range(50)), encoding="utf-16")
    with pytest.raises(DataError) as info:
        read_records_checked(path)
    assert str(info.value) == f"{path}: UTF-16 で保存されています。UTF-8 で保存し直してください"


def test_a_byte_that_is_not_utf8_is_counted_from_one(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_bytes(b'{"page_id": "\x82"}\n')
    assert "（14 バイト目）" in str(first_error(path))


@pytest.mark.parametrize("make, words", [
    (lambda path: path.mkdir(), "フォルダです"),
    (lambda path: None, "見つかりません"),
    (lambda path: (path.write_text("{}\n"), path.chmod(0)), "アクセスする権限がありません"),
])
def test_a_file_that_cannot_be_opened_says_why_in_japanese(tmp_path, make, words):
    path = tmp_path / "train.jsonl"
    make(path)
    if words.startswith("アクセス") and os.access(path, os.R_OK):
        pytest.skip("root reads any file")
    assert str(first_error(path)) == f"{path}: ファイルを開けません: {words}" + (
        " (ファイルを指定してください)" if "フォルダ" in words else "")


def labeled(n_per_label):
    return [Record(f"{label}-{i}", "", "本文", [label, "x"][: 1 + i % 2])
            for label, n in n_per_label.items() for i in range(n)]


def test_split_is_deterministic_disjoint_and_complete():
    records = labeled({"a": 50, "b": 30, "c": 7, "d": 1})
    train, dev = split_train_dev(records, 0.2, seed=3)
    assert (train, dev) == split_train_dev(records, 0.2, seed=3)
    assert split_train_dev(records, 0.2, seed=4) != (train, dev)
    train_ids, dev_ids = {r.page_id for r in train}, {r.page_id for r in dev}
    assert not train_ids & dev_ids
    assert train_ids | dev_ids == {r.page_id for r in records}
    assert [r for r in records if r.page_id in dev_ids] == dev  # input order kept


def test_split_is_stratified_by_first_label():
    records = labeled({"a": 50, "b": 30, "c": 7, "d": 1})
    _, dev = split_train_dev(records, 0.2)
    counts = {label: sum(r.labels[0] == label for r in dev) for label in "abcd"}
    assert counts == {"a": 10, "b": 6, "c": 1, "d": 0}


def test_split_rejects_bad_fraction():
    with pytest.raises(ValueError, match="dev_fraction"):
        split_train_dev(labeled({"a": 5}), 1.0)


def test_label_set_is_sorted_and_unique():
    records = [Record("1", "", "t", ["b", "a"]), Record("2", "", "t", ["a"]), Record("3", "", "t")]
    assert label_set(records) == ["a", "b"]


def test_records_or_errors_stream_in_line_order(tmp_path):
    path = write_lines(tmp_path / "in.jsonl", [good("1"), "{", good("3")])
    items = list(iter_records_or_errors(path))
    assert [type(i).__name__ for i in items] == ["Record", "DataError", "Record"]


def test_count_nonblank_lines_for_a_progress_total(tmp_path):
    from solutions.data import count_nonblank_lines

    plain = tmp_path / "pages.jsonl"
    plain.write_bytes(b'{"page_id": "1"}\n\n  \n{broken\n\xff\xfe not utf-8\n{"page_id": "2"}')
    assert count_nonblank_lines(plain) == 4  # every line that would be read or warned
    packed = tmp_path / "pages.jsonl.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    assert count_nonblank_lines(packed) == 4
    packed.write_bytes(gzip.compress(plain.read_bytes())[:-12])  # cut: the reader will say where
    assert count_nonblank_lines(packed) is None
    assert count_nonblank_lines(tmp_path / "missing.jsonl") is None


def test_a_broken_json_line_says_why_without_the_line_end(tmp_path):
    from solutions.data.records import parse_json_object

    with pytest.raises(DataError) as info:
        parse_json_object('{"page_id": "1", "text": "途中で\n', "p.jsonl", 3)
    assert str(info.value) == "p.jsonl:3: JSON として読めません（26 文字目: Unterminated string starting）"


def test_an_error_of_writing_itself_names_the_file_and_others_are_left_alone(tmp_path):
    """A full disk names no file: the one being written is at fault. An error of what is
    being written (a broken gzip input read on the way) is not about that file."""
    import errno

    from solutions.data.records import atomic_writer

    target = tmp_path / "out.jsonl"
    target.write_text("older\n")
    with pytest.raises(OSError) as info:
        with atomic_writer(target) as f:
            f.write("x")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert info.value.filename == str(target) and info.value.errno == errno.ENOSPC
    with pytest.raises(gzip.BadGzipFile) as info:
        with atomic_writer(target) as f:
            raise gzip.BadGzipFile("Not a gzipped file")
    assert info.value.filename is None
    assert target.read_text() == "older\n" and [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]
