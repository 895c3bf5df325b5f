"""BERT's 15% / 80-10-10 masking."""
import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from solutions.mlm import mask_tokens

VOCAB = 1000


def batch(n=600, seq=400, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, VOCAB, (n, seq), generator=g)
    ids[:, 0], ids[:, -1] = 2, 3               # [CLS] ... [SEP]
    ids[: n // 2, seq // 2:] = 0               # half the rows padded
    ids[:, 5] = 1                              # an [UNK]
    return ids


def test_masking_statistics_over_100k_tokens():
    ids = batch()
    masked, labels = mask_tokens(ids, VOCAB, generator=torch.Generator().manual_seed(1))
    eligible = ids >= 5
    assert eligible.sum() > 100_000
    chosen = labels != -100
    share = chosen.sum().item() / eligible.sum().item()
    assert abs(share - 0.15) < 0.01
    n = chosen.sum().item()
    became_mask = (masked[chosen] == 4).sum().item() / n
    unchanged = (masked[chosen] == ids[chosen]).sum().item() / n
    random = 1 - became_mask - unchanged
    assert abs(became_mask - 0.8) < 0.01
    assert abs(unchanged - 0.1) < 0.01  # (a random draw equal to the original is rare: 1/995)
    assert abs(random - 0.1) < 0.01


def test_specials_and_pad_are_never_chosen_or_produced():
    ids = batch(seed=3)
    masked, labels = mask_tokens(ids, VOCAB, generator=torch.Generator().manual_seed(2))
    special = ids < 5
    assert torch.all(labels[special] == -100)
    assert torch.equal(masked[special], ids[special])
    replaced = (labels != -100) & (masked != 4)
    assert torch.all(masked[replaced] >= 5)
    assert torch.equal(labels[labels != -100], ids[labels != -100])


def test_deterministic_under_a_seed():
    ids = batch(50, 64)
    a = mask_tokens(ids, VOCAB, generator=torch.Generator().manual_seed(7))
    b = mask_tokens(ids, VOCAB, generator=torch.Generator().manual_seed(7))
    c = mask_tokens(ids, VOCAB, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])


def test_time_budget_schedule_ignores_a_slow_start():
    """A 20 s compile in step 1 must not shrink the plan (nor its warm-up) to a few steps."""
    from solutions.pretrain import PretrainSettings, fit_schedule_to_budget
    from solutions.training import warmup_steps_for

    settings = PretrainSettings(minutes=3, max_steps=10**7, warmup_ratio=0.1)
    plan = {"total": settings.max_steps, "warmup": warmup_steps_for(settings.max_steps, 0.1)}
    clock = lambda step: 20.0 + 0.1 * step  # noqa: E731  (20 s of compiling, then 0.1 s a step)
    fitted = [fit_schedule_to_budget(plan, step, clock(step), settings) for step in range(10, 300, 10)]
    assert fitted == [False] + [True] * (len(fitted) - 1)  # the progress bar learns its total from step 20
    expected_total = int((180 - 20) / 0.1)
    assert abs(plan["total"] - expected_total) <= 2
    assert plan["warmup"] == warmup_steps_for(plan["total"], 0.1)  # 10 %, not 10 % of a first guess


def test_pretraining_starts_on_short_blocks_then_trains_at_full_length(tmp_path):
    """BERT's recipe: most steps on short blocks, the rest at max_length, same tokens per step."""
    from solutions.data import make_demo_corpus
    from solutions.pretrain import PretrainSettings, pretrain

    texts = [r.text for r in make_demo_corpus(200, seed=0)]
    settings = PretrainSettings(size="tiny", vocab_size=600, max_length=64, short_length=16, short_share=0.75,
                                batch_size=4, max_steps=40, device="cpu")
    summary = pretrain(texts, tmp_path, settings)
    assert [p["tokens_per_block"] for p in summary["phases"]] == [16, 64]
    assert [p["batch_size"] for p in summary["phases"]] == [16, 4]  # 256 tokens a step in both
    log = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    lengths = {entry["step"]: entry["length"] for entry in log}
    assert lengths[10] == lengths[30] == 16 and lengths[40] == 64
    assert summary["steps"] == 40


def test_pretraining_twice_with_one_seed_gives_the_same_model(tmp_path):
    """Vocabulary, blocks, masks, dropout and updates all follow the seed: a run can be
    repeated exactly (before train_vocab fixed its order, the vocabularies differed)."""
    from safetensors.torch import load_file

    from solutions.data import make_demo_corpus
    from solutions.pretrain import PretrainSettings, pretrain

    texts = [(r.title, r.text) for r in make_demo_corpus(200, seed=0)]
    settings = PretrainSettings(size="tiny", vocab_size=1500, max_length=64, short_length=32, short_share=0.5,
                                copy_positions=True, batch_size=4, max_steps=20, device="cpu")
    first, second = (pretrain(texts, tmp_path / name, settings) for name in ("a", "b"))
    assert first["final_loss"] == second["final_loss"]
    assert (tmp_path / "a" / "vocab.txt").read_text() == (tmp_path / "b" / "vocab.txt").read_text()
    a, b = (load_file(tmp_path / name / "model.safetensors") for name in ("a", "b"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_copy_position_embeddings_repeats_the_trained_positions():
    from solutions.config import BertConfig
    from solutions.models import BertForMaskedLM
    from solutions.pretrain import copy_position_embeddings

    model = BertForMaskedLM(BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                       intermediate_size=16, max_position_embeddings=100))
    before = model.bert.embeddings.position.weight.detach().clone()
    copy_position_embeddings(model, 16, 40)
    after = model.bert.embeddings.position.weight.detach()
    assert torch.equal(after[:16], before[:16]) and torch.equal(after[40:], before[40:])
    for position in range(16, 40):
        assert torch.equal(after[position], before[position % 16])


@pytest.mark.parametrize("copy", [True, False])
def test_longer_blocks_start_from_copied_positions_when_asked(tmp_path, copy):
    """After the switch from 16- to 64-token blocks, positions 16..63 begin as copies of
    0..15 (copy_positions) or keep their random start; a few steps move them only a little."""
    from safetensors.torch import load_file

    from solutions.data import make_demo_corpus
    from solutions.pretrain import PretrainSettings, pretrain

    texts = [r.text for r in make_demo_corpus(200, seed=0)]
    settings = PretrainSettings(size="tiny", vocab_size=600, max_length=64, short_length=16, short_share=0.75,
                                batch_size=4, max_steps=40, lr=1e-4, copy_positions=copy, device="cpu")
    pretrain(texts, tmp_path, settings)
    positions = load_file(str(tmp_path / "model.safetensors"))["bert.embeddings.position_embeddings.weight"]
    gap = (positions[16:64] - positions[:16].repeat(3, 1)).abs().mean()
    spread = positions[64:].std()  # never trained: the random start, N(0, 0.02)
    assert (gap < 0.1 * spread) if copy else (gap > spread)


def test_pretrain_command_copies_positions_when_asked(tmp_path, monkeypatch):
    from autograder import cli
    from solutions import pretrain
    from solutions.data import make_demo_corpus, write_jsonl

    calls = []
    monkeypatch.setattr(pretrain, "copy_position_embeddings", lambda model, *lengths: calls.append(lengths))
    data = tmp_path / "train.jsonl"
    write_jsonl(data, make_demo_corpus(100, seed=0))
    assert cli.main(["pretrain", "--data", str(data), "--out", str(tmp_path / "pre"), "--vocab-size", "500",
                     "--max-steps", "8", "--batch-size", "2", "--max-length", "64", "--short-length", "32",
                     "--short-share", "0.5", "--copy-positions", "--device", "cpu"]) == 0
    assert calls == [(32, 64)]  # once, at the switch
    summary = json.loads((tmp_path / "pre" / "pretrain_summary.json").read_text())
    assert summary["settings"]["copy_positions"] is True


def test_heldout_mlm_loss_is_logged_and_matches_transformers(tmp_path):
    """With held-out text, pre-training logs its MLM loss and accuracy; the final
    figures are those transformers' BertForMaskedLM gives for the saved checkpoint."""
    import math

    import transformers

    from solutions.data import make_demo_corpus
    from solutions.pretrain import PretrainSettings, document_token_ids, heldout_samples, pretrain
    from solutions.tokenization import Tokenizer
    from solutions.training import read_log

    records = make_demo_corpus(240, seed=3)
    texts, dev_texts = [(r.title, r.text) for r in records[:200]], [(r.title, r.text) for r in records[200:]]
    settings = PretrainSettings(size="tiny", vocab_size=600, max_length=32, batch_size=16, lr=2e-3,
                                max_steps=90, eval_every=30, device="cpu")
    summary = pretrain(texts, tmp_path, settings, dev_texts=dev_texts)

    evals = [e for e in read_log(tmp_path / "metrics.jsonl") if "dev_loss" in e]
    assert [e["step"] for e in evals] == [30, 60, 90, 90]  # every 30 steps, then the final model
    # It learns what carries over to unseen text: well below guessing among the whole vocabulary.
    assert evals[-1]["dev_loss"] < min(evals[0]["dev_loss"], math.log(summary["vocab_size"]) - 0.5)
    assert 0 < summary["unigram_loss"] < math.log(summary["vocab_size"])  # the curve's reference line

    tokenizer = Tokenizer.from_pretrained(tmp_path)
    masked, labels, segments = heldout_samples(document_token_ids(tokenizer, dev_texts), tokenizer, [32],
                                               settings)[32]
    assert segments.any()  # pages as (title, body): segment 1 after the first [SEP]
    hf = transformers.BertForMaskedLM.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        out = hf(input_ids=masked, token_type_ids=segments, labels=labels)
    chosen = labels != -100
    accuracy = (out.logits[chosen].argmax(-1) == labels[chosen]).float().mean().item()
    assert summary["dev_loss"] == pytest.approx(out.loss.item(), abs=1e-4)
    assert summary["dev_accuracy"] == pytest.approx(accuracy, abs=1e-6)


def test_heldout_text_too_short_is_reported(tmp_path):
    from solutions.data import make_demo_corpus
    from solutions.pretrain import PretrainSettings, pretrain
    from solutions.training import TrainingError

    texts = [r.text for r in make_demo_corpus(50, seed=0)]
    settings = PretrainSettings(size="tiny", vocab_size=400, max_length=64, max_steps=2, device="cpu")
    with pytest.raises(TrainingError, match="評価用"):
        pretrain(texts, tmp_path, settings, dev_texts=["短い。"])


def test_pretraining_steps_on_full_batches_only(tmp_path, monkeypatch):
    """No short last batch at the end of an epoch: one shape a length, one compiled graph."""
    import solutions.pretrain as P
    from solutions.data import make_demo_corpus

    shapes, step = [], P.mlm_step

    def recording_step(model, optimizer, scheduler, masked, labels, *rest):
        shapes.append(tuple(masked.shape))
        return step(model, optimizer, scheduler, masked, labels, *rest)

    monkeypatch.setattr(P, "mlm_step", recording_step)
    texts = [r.text for r in make_demo_corpus(60, seed=0)]
    settings = P.PretrainSettings(size="tiny", vocab_size=400, max_length=32, batch_size=7, max_steps=120,
                                  device="cpu")
    summary = P.pretrain(texts, tmp_path, settings)
    blocks = summary["phases"][0]["blocks"]
    assert blocks % 7 and 120 > blocks // 7  # epochs end with a remainder, and there are several epochs
    assert set(shapes) == {(7, 32)} and len(shapes) == 120


def test_ctrl_c_in_pretraining_saves_the_model_after_the_step(tmp_path, monkeypatch, capfd):
    import os
    import signal

    import solutions.pretrain as P
    from autograder import cli
    from solutions.checkpoints import load_model
    from solutions.data import make_demo_corpus, write_jsonl
    from solutions.models import BertForMaskedLM

    step, calls = P.mlm_step, {"n": 0}

    def pressing_ctrl_c(*args):  # a real SIGINT, in the middle of the 6th step
        calls["n"] += 1
        if calls["n"] == 6:
            os.kill(os.getpid(), signal.SIGINT)
        return step(*args)

    monkeypatch.setattr(P, "mlm_step", pressing_ctrl_c)
    write_jsonl(tmp_path / "pages.jsonl", make_demo_corpus(60, seed=0))
    # Still on 16-token blocks (the first 80% of 500 steps) when stopped, with --copy-positions.
    code = cli.main(["pretrain", "--data", str(tmp_path / "pages.jsonl"), "--out", str(tmp_path / "pre"),
                     "--size", "tiny", "--vocab-size", "400", "--max-length", "32", "--short-length", "16",
                     "--short-share", "0.8", "--copy-positions", "--batch-size", "8", "--max-steps", "500",
                     "--device", "cpu"])
    assert code == 130 and calls["n"] == 6
    err = capfd.readouterr().err
    assert "このステップが終わったら保存して止めます" in err and "Ctrl-C で止めました" in err
    assert "32 トークンのブロックはまだ学習していない" in err
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    summary = json.loads((tmp_path / "pre/pretrain_summary.json").read_text())
    assert summary["interrupted"] and summary["steps"] == 6 and summary["longest_trained_block"] == 16
    model, missing = load_model(tmp_path / "pre", BertForMaskedLM)  # a whole checkpoint, usable by train
    positions = model.bert.embeddings.position.weight
    assert not missing and torch.equal(positions[16:32], positions[:16])  # copied, as the switch would have


def test_unigram_loss_is_the_loss_of_guessing_by_frequency():
    """unigram_loss: the cross-entropy (scikit-learn's log_loss) of predicting every
    non-special token by its frequency in the blocks; [CLS]/[SEP]/[PAD] are never targets."""
    import numpy as np
    from sklearn.metrics import log_loss

    from solutions.pretrain import unigram_loss

    g = torch.Generator().manual_seed(4)
    words = torch.multinomial(torch.tensor([8.0, 4, 2, 1, 1, 0.5]), 3000, replacement=True, generator=g) + 5
    blocks = torch.cat([torch.full((100, 1), 2), words.view(100, 30), torch.full((100, 1), 3)], dim=1)
    blocks[::7, -5:-1] = 0  # some padding
    targets = blocks[blocks >= 5].numpy()
    classes, counts = np.unique(targets, return_counts=True)
    guess = np.tile(counts / counts.sum(), (len(targets), 1))
    assert unigram_loss(blocks) == pytest.approx(log_loss(targets, guess, labels=classes), abs=1e-9)
    assert unigram_loss(torch.tensor([[2, 9, 9, 9, 3]])) == 0.0  # one token: no uncertainty


def test_pages_are_packed_with_the_segments_fine_tuning_gives_them(tmp_path):
    """A page (title, body) becomes "title [SEP] body", and a block's segments are those of
    transformers' BertJapaneseTokenizer for the pair: 0 up to the first [SEP], 1 after it."""
    from test_tokenization import transformers_tokenizer

    from solutions.pretrain import document_token_ids, pack_sequences, segment_ids
    from solutions.tokenization import Tokenizer, train_vocab

    pages = [("東京都の会社", "東京都に本社を置く会社である。一九九〇年に設立された。"),
             ("山田太郎", "日本の野球選手。大阪府出身。")]
    tokenizer = Tokenizer(train_vocab(["\n".join(page) for page in pages] * 3, 300, min_frequency=1))
    hf = transformers_tokenizer(tokenizer.save(tmp_path) / "vocab.txt")
    for page, ids in zip(pages, document_token_ids(tokenizer, pages)):
        expected = hf(*page, return_token_type_ids=True)
        block = torch.tensor([[tokenizer.cls_id, *ids, tokenizer.sep_id]])  # one page, one block
        assert block[0].tolist() == expected["input_ids"]
        assert segment_ids(block, tokenizer.sep_id)[0].tolist() == expected["token_type_ids"]
    # Packed: a block holds the end of one page and the start of the next; segment 1 after the first [SEP].
    block = pack_sequences(document_token_ids(tokenizer, pages), tokenizer, 20)[0]
    first_sep = block.tolist().index(tokenizer.sep_id)
    assert segment_ids(block[None], tokenizer.sep_id)[0].tolist() == [0] * (first_sep + 1) + [1] * (19 - first_sep)


def read_back_documents(blocks: torch.Tensor, sep_id: int) -> list[list[int]]:
    """The documents a packing holds, in order: the blocks' bodies joined, split at [SEP]."""
    stream = blocks[:, 1:-1].reshape(-1).tolist()
    documents, current = [], []
    for token in stream:
        if token == sep_id:
            documents.append(current)
            current = []
        else:
            current.append(token)
    return documents + [current]  # the last one cut off by the end of the last block


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 40), min_size=2, max_size=30), st.integers(4, 24), st.integers(0, 10**6))
def test_repacked_blocks_hold_every_document_whole_in_a_new_order(lengths, max_length, seed):
    """Documents of distinct tokens (document i is token 10+i, repeated): reading the blocks
    back gives each document whole, once, in a permuted order; only the tail is cut off."""
    from types import SimpleNamespace

    from solutions.pretrain import repacked

    tokenizer = SimpleNamespace(cls_id=2, sep_id=3)
    documents = [torch.full((n,), 10 + i) for i, n in enumerate(lengths)]
    total = sum(lengths) + len(lengths)  # each document and its [SEP]
    if total < max_length - 2:
        return  # too short for one block: pack_sequences' error (tested elsewhere)
    blocks = repacked(documents, tokenizer, max_length, torch.Generator().manual_seed(seed))
    assert blocks.shape == (total // (max_length - 2), max_length)
    assert (blocks[:, 0] == 2).all() and (blocks[:, -1] == 3).all()
    *whole, cut = read_back_documents(blocks, 3)
    order = [document[0] - 10 if document else None for document in whole]
    for i, document in zip(order, whole):  # whole documents: all of one, and all of it
        if i is not None:
            assert document == [10 + i] * lengths[i]
    assert len(set(i for i in order if i is not None)) == sum(1 for i in order if i is not None)
    assert all(token == cut[0] for token in cut)  # the remainder: the start of one document


def test_packing_too_little_text_is_reported():
    from types import SimpleNamespace

    from solutions.pretrain import pack_sequences
    from solutions.training import TrainingError

    tokenizer = SimpleNamespace(cls_id=2, sep_id=3)
    for documents in ([], [[7, 8]]):
        with pytest.raises(TrainingError, match="短すぎます"):
            pack_sequences(documents, tokenizer, 8)
    assert pack_sequences([[7, 8, 9, 10, 11]], tokenizer, 8).tolist() == [[2, 7, 8, 9, 10, 11, 3, 3]]


def test_each_pass_over_the_text_packs_new_blocks(tmp_path, monkeypatch):
    """shuffle_documents (the default): the second pass trains on other blocks than the
    first; without it, on the same blocks in another order."""
    import solutions.pretrain as P
    from solutions.data import make_demo_corpus

    texts = [r.text for r in make_demo_corpus(20, seed=0)]
    masking = P.masking
    for shuffle in (True, False):
        seen = []

        def recording_masking(tokenizer, settings):
            mask = masking(tokenizer, settings)

            def recording_mask(ids, generator):  # every block trained on, before masking
                seen.extend(map(tuple, ids.tolist()))
                return mask(ids, generator=generator)
            return recording_mask

        monkeypatch.setattr(P, "masking", recording_masking)
        settings = P.PretrainSettings(size="tiny", vocab_size=400, max_length=32, batch_size=5, max_steps=100,
                                      shuffle_documents=shuffle, device="cpu")
        summary = P.pretrain(texts, tmp_path / str(shuffle), settings)
        per_pass = summary["phases"][0]["blocks"] // 5 * 5
        assert summary["steps"] * 5 >= 2 * per_pass  # at least two passes
        first, second = set(seen[:per_pass]), set(seen[per_pass:2 * per_pass])
        assert len(first) > 0.95 * per_pass  # (blocks of the same text may repeat by chance)
        shared = len(first & second)  # (without shuffling, each pass leaves out another remainder)
        assert (shared < 0.2 * len(first)) if shuffle else (shared >= len(first) - 5)


def test_pretraining_trains_the_segment_embedding_fine_tuning_uses(tmp_path, monkeypatch):
    """Every step passes the blocks' segments, so segment 1 (the body in fine-tuning) is trained."""
    import solutions.pretrain as P
    from solutions.data import make_demo_corpus

    seen, step = [], P.mlm_step

    def recording_step(model, optimizer, scheduler, masked, labels, clip_norm, device, scaler, token_type_ids):
        seen.append((masked, token_type_ids))
        loss = step(model, optimizer, scheduler, masked, labels, clip_norm, device, scaler, token_type_ids)
        seen[-1] += (model.bert.embeddings.segment.weight.detach().clone(),)
        return loss

    monkeypatch.setattr(P, "mlm_step", recording_step)
    pages = [(r.title, r.text) for r in make_demo_corpus(60, seed=0)]
    settings = P.PretrainSettings(size="tiny", vocab_size=400, max_length=32, batch_size=8, max_steps=20,
                                  device="cpu")
    P.pretrain(pages, tmp_path, settings)
    tokenizer = P.Tokenizer.from_pretrained(tmp_path)
    for masked, segments, _ in seen:
        assert torch.equal(segments, P.segment_ids(masked, tokenizer.sep_id))
    assert sum(int(segments.sum()) for _, segments, _ in seen) > 0
    moved = (seen[-1][2] - seen[0][2]).norm(dim=1)
    assert moved[1] > 0.5 * moved[0]  # segment 1 learns like segment 0, not just by weight decay
