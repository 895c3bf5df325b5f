"""Long pages read in several windows: chunking, averaging, and the train → predict path."""
import json

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from sklearn.metrics import f1_score
from sklearn.preprocessing import MultiLabelBinarizer

from solutions.data import make_demo_corpus, split_train_dev
from solutions.encoding import encode_records, window_starts
from solutions.finetune import FinetuneSettings, finetune, record_probabilities
from solutions.predict import predict_file
from solutions.tokenization import CLS_ID, SEP_ID, Tokenizer, train_vocab


@given(n_tokens=st.integers(0, 3000), body=st.integers(1, 600), windows=st.integers(1, 8))
def test_window_starts_cover_the_text_with_full_chunks(n_tokens, body, windows):
    starts = window_starts(n_tokens, body, windows)
    assert 1 <= len(starts) <= windows
    assert starts == sorted(starts) and starts[0] == 0
    if n_tokens <= body:
        assert starts == [0]
        return
    assert all(0 <= s <= n_tokens - body for s in starts)  # every chunk is full length
    if len(starts) > 1:
        assert starts[-1] == n_tokens - body  # the last chunk reaches the end
    if n_tokens <= windows * body:  # enough windows: every token is read
        covered = set().union(*(range(s, s + body) for s in starts))
        assert covered == set(range(n_tokens))


@pytest.fixture(scope="module")
def records():
    return make_demo_corpus(n_pages=300, seed=4)


@pytest.fixture(scope="module")
def tokenizer(records):
    return Tokenizer(train_vocab([r.title + "\n" + r.text for r in records], 800))


def test_windows_repeat_the_title_and_read_the_whole_text(records, tokenizer):
    max_length, windows = 24, 16
    one = encode_records(tokenizer, records, max_length)
    many = encode_records(tokenizer, records, max_length, windows=windows)
    assert one["record"] == list(range(len(records)))
    assert sorted(set(many["record"])) == list(range(len(records))) and many["record"] == sorted(many["record"])
    assert len(many["record"]) > 2 * len(records)  # the demo pages need several windows at 24 tokens
    first_window = {}
    for ids, segments, record in zip(many["input_ids"], many["token_type_ids"], many["record"]):
        first_window.setdefault(record, ids)
        assert len(ids) <= max_length and ids[0] == CLS_ID and ids[-1] == SEP_ID
        title = tokenizer.ids_of_texts([records[record].title])[0][:(max_length - 3) // 2]
        assert ids[1:1 + len(title)] == title and segments.count(0) == len(title) + 2
    read_whole = 0
    for i, r in enumerate(records):
        title, text = tokenizer.ids_of_texts([r.title, r.text])
        body = max_length - 3 - min(len(title), (max_length - 3) // 2)
        chunks = [ids[ids.index(SEP_ID) + 1:-1] for ids, rec in zip(many["input_ids"], many["record"]) if rec == i]
        if len(text) <= windows * body:  # enough windows: no token of the text is left unread
            assert set().union(*map(set, chunks)) == set(text)
            read_whole += 1
        if len(title) < (max_length - 3) // 2:
            assert first_window[i] == one["input_ids"][i]  # window 1 is what a single window reads
    assert read_whole > 0.9 * len(records)


def test_record_probabilities_are_the_mean_of_their_windows():
    rng = np.random.default_rng(0)
    record = sorted(rng.integers(0, 40, 200).tolist())
    record = [sorted(set(record)).index(r) for r in record]  # numbered 0, 1, … without gaps
    window_probs = rng.random((200, 7)).astype(np.float32)
    expected = np.stack([window_probs[np.array(record) == r].mean(0) for r in range(record[-1] + 1)])
    got = record_probabilities(torch.from_numpy(window_probs), record).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_trained_with_windows_predict_reads_pages_the_same_way(tmp_path, records, tokenizer, tiny_pretrained):
    train, dev = split_train_dev(records, dev_fraction=0.25, seed=0)
    summary = finetune(train, dev, tiny_pretrained(tokenizer), tmp_path / "ft",
                       FinetuneSettings(epochs=2, lr=3e-3, max_length=24, windows=4, multi_label=False,
                                        device="cpu", keep_state=False))
    saved = json.loads((tmp_path / "ft" / "best" / "config.json").read_text())
    assert saved["windows"] == 4

    # predict takes the windows from the checkpoint; its micro-F1 (scikit-learn) is the dev
    # figure fine-tuning reported for the best epoch.
    predict_file(tmp_path / "ft" / "best", dev, tmp_path / "pred.jsonl", output_format="simple",
                 max_length=24, device="cpu")
    predicted = [json.loads(line)["labels"] for line in (tmp_path / "pred.jsonl").read_text().splitlines()]
    assert all(len(p) == 1 for p in predicted)
    binarize = MultiLabelBinarizer().fit([r.labels for r in records])
    f1 = 100 * f1_score(binarize.transform([r.labels for r in dev]), binarize.transform(predicted), average="micro")
    assert f1 == pytest.approx(summary["best"]["dev_micro_f1"], abs=1e-6)

    predict_file(tmp_path / "ft" / "best", dev, tmp_path / "pred1.jsonl", output_format="simple",
                 max_length=24, device="cpu", windows=1)
    probs = [json.loads(line)["probs"] for line in (tmp_path / "pred.jsonl").read_text().splitlines()]
    probs1 = [json.loads(line)["probs"] for line in (tmp_path / "pred1.jsonl").read_text().splitlines()]
    assert probs != probs1  # reading only the start of each page gives other probabilities


def test_windows_below_one_are_refused(tmp_path, records):
    from solutions.training import TrainingError

    with pytest.raises(TrainingError, match="--windows"):
        finetune(records[:10], records[10:20], tmp_path / "none", tmp_path / "ft",
                 FinetuneSettings(windows=0, device="cpu"))


def test_windows_need_room_for_a_chunk_of_text(records, tokenizer):
    """"[CLS] title [SEP] chunk [SEP]": at max_length 3 no token of text fits (it divided by zero)."""
    with pytest.raises(ValueError, match="max_length が 4 以上"):
        encode_records(tokenizer, records[:3], 3, windows=2)
    many = encode_records(tokenizer, records[:3], 4, windows=2)
    assert sorted(set(many["record"])) == [0, 1, 2] and all(len(ids) == 4 for ids in many["input_ids"])
