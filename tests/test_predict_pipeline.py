"""Prediction as a pipeline: tokenizer processes started once, the next chunk
tokenized while the model works on this one, and the same probabilities as
the reference model run page by page."""
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest
import torch

from solutions.config import BertConfig
from solutions.data import make_demo_corpus
from solutions.encoding import encode_records
from solutions.fast import FastBertForSequenceClassification
from solutions.models import BertForSequenceClassification
from solutions.predict import check_output_format, predictions, prefetched, probabilities_by_chunk
from solutions.training import TrainingError
from solutions.tokenization import Tokenizer, train_vocab


@pytest.fixture(scope="module")
def records():
    """Pages of many lengths, so that sorting them into batches reorders them."""
    pages = make_demo_corpus(n_pages=120, seed=7)
    return [replace(r, text=r.text[:(37 * i) % 90]) for i, r in enumerate(pages)]


@pytest.fixture(scope="module")
def tokenizer(records):
    return Tokenizer(train_vocab([r.title + "\n" + r.text for r in records], 600))


@pytest.fixture(scope="module")
def model(tokenizer):
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
                        labels=[f"L{i}" for i in range(5)])
    return FastBertForSequenceClassification(config).eval()


def test_prefetched_encodes_the_next_chunk_while_the_caller_works():
    encoded_first = []
    next_one_started = threading.Event()

    def encode(chunk):
        encoded_first.append(chunk[0])
        if chunk[0] == 2:
            next_one_started.set()
        return [10 * x for x in chunk]

    with ThreadPoolExecutor(1) as background:
        stream = prefetched(iter([[0, 1], [2, 3], [4]]), encode, background)
        assert next(stream) == ([0, 1], [0, 10])
        # the caller still holds the first chunk: the second is being encoded already
        assert next_one_started.wait(10)
        assert list(stream) == [([2, 3], [20, 30]), ([4], [40])]
    assert encoded_first == [0, 2, 4]  # each chunk once, in order


def test_prefetched_without_an_executor_encodes_each_chunk_when_it_is_needed():
    encoded = []

    def encode(chunk):
        encoded.append(chunk[0])
        return chunk

    stream = prefetched([[0], [1], [2]], encode)
    assert next(stream) == ([0], [0])
    assert encoded == [0]
    assert list(stream) == [([1], [1]), ([2], [2])]
    assert encoded == [0, 1, 2]


@pytest.mark.parametrize("in_background", [True, False])
def test_prefetched_passes_errors_on_at_the_chunk_that_failed(in_background):
    def encode(chunk):
        if chunk == ["bad"]:
            raise ValueError("chunk 2 is malformed")
        return chunk

    with ThreadPoolExecutor(1) as executor:
        background = executor if in_background else None
        stream = prefetched([["ok"], ["bad"]], encode, background)
        assert next(stream) == (["ok"], ["ok"])  # the chunk before it is not lost
        with pytest.raises(ValueError, match="chunk 2"):
            next(stream)
        assert list(prefetched([], encode, background)) == []


def test_a_worker_pool_gives_the_ids_of_one_process(records, tokenizer):
    texts = [r.text for r in records]
    expected = [tokenizer.leading_ids(t, 30) for t in texts]
    with tokenizer.worker_pool(2) as pool:
        assert tokenizer.ids_of_texts(texts, max_tokens=30, pool=pool) == expected
        # one pool serves many calls
        assert tokenizer.ids_of_texts(texts[:5], pool=pool) == [tokenizer.fast_ids(t) for t in texts[:5]]
        encoded = encode_records(tokenizer, records, 32, pool=pool)
    assert encoded == encode_records(tokenizer, records, 32)


CTRL_C_SCRIPT = """
import time
from concurrent.futures import ThreadPoolExecutor
from solutions.data import make_demo_corpus
from solutions.predict import prefetched
from solutions.tokenization import Tokenizer, train_vocab

texts = [r.text for r in make_demo_corpus(n_pages=100, seed=1)]
tokenizer = Tokenizer(train_vocab(texts, 500))
with tokenizer.worker_pool(2) as pool, ThreadPoolExecutor(1) as background:
    print("ready", flush=True)
    for chunk, ids in prefetched([texts * 30] * 50, lambda c: tokenizer.ids_of_texts(c, pool=pool), background):
        time.sleep(0.2)  # the GPU's turn
"""


def test_ctrl_c_stops_a_pipeline_whose_workers_are_busy():
    """Ctrl-C reaches every process of the terminal. Workers that died of it would
    leave the background thread waiting for their tasks forever, and the main
    process waiting for that thread."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    run = subprocess.Popen([sys.executable, "-c", CTRL_C_SCRIPT], cwd=root, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert run.stdout.readline().strip() == "ready"
        time.sleep(2)  # the workers are tokenizing a chunk
        os.killpg(run.pid, signal.SIGINT)  # as the terminal does: the whole process group
        _, stderr = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    assert run.returncode != 0 and "KeyboardInterrupt" in stderr


def reference_probabilities(model, tokenizer, records, max_length):
    """Each page alone, unpadded, through the reference classifier (not the fast one)."""
    reference = BertForSequenceClassification(model.config).eval()
    reference.load_state_dict(model.state_dict())
    rows = []
    with torch.no_grad():
        for r in records:
            features = tokenizer.encode(r.title, r.text, max_length=max_length)
            ids = torch.tensor([features["input_ids"]])
            segments = torch.tensor([features["token_type_ids"]])
            rows.append(reference(ids, token_type_ids=segments)["logits"].softmax(-1)[0])
    return torch.stack(rows)


@pytest.mark.parametrize("chunk_size, workers", [(17, 2), (10_000, 1)])
def test_pipeline_probabilities_are_those_of_each_page_alone(records, tokenizer, model, chunk_size, workers):
    expected = reference_probabilities(model, tokenizer, records, 40)
    assert len({len(tokenizer.encode(r.title, r.text, max_length=40)["input_ids"]) for r in records}) > 10
    pages_read = []

    def stream():  # a lazy input: the pipeline must not read it all at once
        for r in records:
            pages_read.append(r)
            yield r

    chunks = probabilities_by_chunk(model, tokenizer, stream(), batch_size=8, max_length=40,
                                    device=torch.device("cpu"), chunk_size=chunk_size, workers=workers)
    pages, probs = [], []
    for chunk, chunk_probs, chosen in chunks:
        assert len(pages_read) <= len(pages) + 2 * chunk_size  # this chunk and the next, no more
        assert [c for c in chosen] == [[int(p.argmax())] for p in chunk_probs]
        pages += chunk
        probs += chunk_probs
    assert [p.page_id for p in pages] == [r.page_id for r in records]  # input order kept
    torch.testing.assert_close(torch.stack(probs), expected, atol=1e-5, rtol=1e-4)


class RecordingBar:
    """Stands in for tqdm: keeps every position the bar is moved to."""

    def __init__(self):
        self.n, self.positions = 0, []

    def update(self, n):
        self.n += n
        self.positions.append(self.n)


def test_the_progress_bar_moves_with_every_batch_and_ends_each_chunk_on_its_pages(records, tokenizer, model):
    bar = RecordingBar()
    done = 0
    for chunk, _, _ in probabilities_by_chunk(model, tokenizer, iter(records), batch_size=8, max_length=40,
                                              device=torch.device("cpu"), chunk_size=50, workers=1, bar=bar):
        done += len(chunk)
        assert bar.n == done  # a chunk's pages are counted when its answers come
    assert done == len(records) == 120
    assert len(bar.positions) >= 120 // 8  # once per batch, not once per chunk (3 chunks)
    assert bar.positions == sorted(bar.positions)


def test_a_total_over_the_pages_read_ends_the_bar_on_the_pages(records, tokenizer, model, capsys):
    # The total counts the input's lines; unreadable lines (warned) are no pages.
    answered = list(predictions(model, tokenizer, records[:30], batch_size=8, max_length=40,
                                device=torch.device("cpu"), total=33))
    assert len(answered) == 30
    bar = capsys.readouterr().err
    assert "0/33" in bar and "30/30" in bar


def test_a_shinra_submission_needs_ene_labels():
    assert check_output_format("auto", ["1.1", "1.4.6"], "ckpt") == "shinra"
    assert check_output_format("auto", ["sports", "news"], "ckpt") == "simple"
    assert check_output_format("simple", ["1.1"], "ckpt") == "simple"
    assert check_output_format("auto", ["0", "1"], "ckpt") == "simple"  # ids of ENE's top level, not SHINRA's
    with pytest.raises(TrainingError, match=r"\('0' など\)"):
        check_output_format("shinra", ["0", "1"], "ckpt")
    with pytest.raises(TrainingError, match=r"ckpt: このモデルのラベル \('sports' など\) は ENE の ID ではない"):
        check_output_format("shinra", ["1.1", "sports"], "ckpt")


def test_a_vocabulary_that_does_not_fit_the_model_is_named(tmp_path, records, tokenizer):
    """vocab.txt with more tokens than the model's embeddings: a clear error, not an IndexError."""
    from solutions.checkpoints import CheckpointError, save_model
    from solutions.predict import predict_file

    config = BertConfig(vocab_size=tokenizer.vocab_size - 1, hidden_size=16, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=32, labels=["a", "b"])
    save_model(BertForSequenceClassification(config), tmp_path / "ckpt", tokenizer)
    with pytest.raises(CheckpointError, match=r"ckpt.*vocab\.txt の語彙数"):
        predict_file(tmp_path / "ckpt", records[:3], tmp_path / "out.jsonl", output_format="simple", device="cpu")
    assert not (tmp_path / "out.jsonl").exists()


@pytest.mark.parametrize("damage", [lambda data: data[:len(data) // 2], lambda data: b""])
def test_a_damaged_token_cache_is_warned_about_and_made_again(tmp_path, records, tokenizer, damage):
    """The cache is only a cache: a file cut short gives the ids of a fresh tokenization."""
    fresh = encode_records(tokenizer, records, 48, cache_dir=tmp_path)
    (cache,) = tmp_path.glob("ids-*.pt")
    cache.write_bytes(damage(cache.read_bytes()))
    with pytest.warns(UserWarning, match=f"{cache}: トークン ID のキャッシュが壊れていて読めません"):
        assert encode_records(tokenizer, records, 48, cache_dir=tmp_path) == fresh
    assert torch.load(cache, weights_only=True) == fresh  # written again


def test_no_page_to_predict_keeps_an_older_output_file(tmp_path, records, tokenizer):
    """The error comes while the file is written: the older file stays as it was."""
    from solutions.checkpoints import save_model
    from solutions.data import DataError
    from solutions.predict import predict_file

    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=32, labels=["a", "b"])
    save_model(BertForSequenceClassification(config), tmp_path / "ckpt", tokenizer)
    (tmp_path / "out.jsonl").write_text("older\n")
    with pytest.raises(DataError, match=r"1 件もありませんでした.*out\.jsonl は書いていません"):
        predict_file(tmp_path / "ckpt", [], tmp_path / "out.jsonl", output_format="simple", device="cpu")
    assert (tmp_path / "out.jsonl").read_text() == "older\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt", "out.jsonl"]
