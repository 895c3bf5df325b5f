"""FastBertForSequenceClassification (last layer at [CLS] only; packed batches)
computes what the reference classifier and transformers' compute."""
import numpy as np
import pytest
import torch
import transformers
from hypothesis import given, settings, strategies as st

from solutions.batching import pad_batch
from solutions.checkpoints import load_model, save_model, to_hf_state_dict
from solutions.config import BertConfig
from solutions.fast import FastBertForSequenceClassification, Packing, pack_batch
from solutions.models import BertForSequenceClassification

TINY = dict(vocab_size=120, hidden_size=64, num_hidden_layers=3, num_attention_heads=4,
            intermediate_size=128, max_position_embeddings=64)
LABELS = ["a", "b", "c", "d"]



def models(multi_label=False):
    """The reference, the fast classifier with the same weights, and transformers'."""
    config = BertConfig(**TINY, labels=LABELS, multi_label=multi_label)
    torch.manual_seed(0)
    reference = BertForSequenceClassification(config).eval()
    fast = FastBertForSequenceClassification(config).eval()
    fast.load_state_dict(reference.state_dict())
    hf_config = transformers.BertConfig(**TINY, num_labels=len(LABELS))
    theirs = transformers.BertForSequenceClassification._from_config(hf_config, attn_implementation="eager").eval()
    theirs.load_state_dict(to_hf_state_dict(reference), strict=False)
    return reference, fast, theirs


def padded_batch(lengths, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = [[2] + torch.randint(5, TINY["vocab_size"], (n - 2,), generator=g).tolist() + [3] for n in lengths]
    segments = [[0] * (n // 2) + [1] * (n - n // 2) for n in lengths]
    return pad_batch(ids, 0, segments)


def grads(model):
    return {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}


LENGTHS = [9, 3, 17, 12]


def test_cls_only_logits_equal_the_reference_and_transformers():
    reference, fast, theirs = models()
    batch = padded_batch(LENGTHS)
    with torch.no_grad():
        expected = reference(**batch)["logits"]
        torch.testing.assert_close(fast(**batch)["logits"], expected, atol=1e-5, rtol=0)
        torch.testing.assert_close(theirs(**batch).logits, expected, atol=1e-5, rtol=0)
        no_mask = {k: v for k, v in padded_batch([7, 7]).items() if k != "attention_mask"}
        torch.testing.assert_close(fast(**no_mask)["logits"], reference(**no_mask)["logits"], atol=1e-5, rtol=0)


def test_packed_logits_equal_the_padded_reference():
    reference, fast, _ = models()
    batch = padded_batch(LENGTHS)
    packed = pack_batch(batch)
    assert packed["input_ids"].shape == (sum(LENGTHS),)
    assert packed["packing"].offsets.tolist() == [0, 9, 12, 29, 41]
    assert (packed["packing"].max_len, packed["packing"].min_len) == (17, 3)
    with torch.no_grad():
        torch.testing.assert_close(fast(**packed)["logits"], reference(**batch)["logits"], atol=1e-5, rtol=0)


@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("multi_label", [False, True])
def test_loss_and_every_gradient_equal_the_reference(packed, multi_label):
    reference, fast, _ = models(multi_label)
    batch = padded_batch(LENGTHS, seed=1)
    labels = torch.tensor([[1, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1], [1, 1, 0, 0]]) if multi_label \
        else torch.tensor([0, 3, 1, 2])
    ref_out = reference(**batch, labels=labels)
    fast_out = fast(**(pack_batch(batch) if packed else batch), labels=labels)
    ref_out["loss"].backward()
    fast_out["loss"].backward()
    torch.testing.assert_close(fast_out["loss"], ref_out["loss"], atol=1e-6, rtol=0)
    expected, got = grads(reference), grads(fast)
    assert set(got) == set(expected)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], atol=1e-5, rtol=1e-4, msg=name)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(min_value=2, max_value=40), min_size=1, max_size=6), st.integers(0, 2**16))
def test_packing_any_lengths(lengths, seed):
    reference, fast, _ = MODELS
    batch = padded_batch(lengths, seed)
    packed = pack_batch(batch)
    assert packed["packing"].offsets.diff().tolist() == lengths
    assert packed["position_ids"].tolist() == [p for n in lengths for p in range(n)]
    assert torch.equal(packed["input_ids"], batch["input_ids"][batch["attention_mask"].bool()])
    with torch.no_grad():
        torch.testing.assert_close(fast(**packed)["logits"], reference(**batch)["logits"], atol=1e-5, rtol=0)


MODELS = models()


def test_training_mode_uses_dropout_and_packing_needs_positions():
    config = BertConfig(**TINY, labels=LABELS)
    fast = FastBertForSequenceClassification(config).train()
    batch = padded_batch(LENGTHS)
    torch.manual_seed(0)
    a = fast(**batch)["logits"]
    torch.manual_seed(1)
    b = fast(**batch)["logits"]
    assert not torch.allclose(a, b), "dropout is active in training mode"
    packed = pack_batch(batch)
    del packed["position_ids"]
    with pytest.raises(ValueError, match="position_ids"):
        fast(**packed)


def test_checkpoints_round_trip_between_the_two_classes(tmp_path):
    reference, fast, _ = models()
    save_model(fast, tmp_path / "fast")
    config = (tmp_path / "fast" / "config.json").read_text()
    assert '"BertForSequenceClassification"' in config  # transformers reads it as its own class
    loaded, missing = load_model(tmp_path / "fast", BertForSequenceClassification)
    assert not missing
    theirs = transformers.BertForSequenceClassification.from_pretrained(tmp_path / "fast").eval()
    batch = padded_batch(LENGTHS)
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(**batch)["logits"], fast(**batch)["logits"], atol=1e-6, rtol=0)
        torch.testing.assert_close(theirs(**batch).logits, fast(**batch)["logits"], atol=1e-5, rtol=0)


def test_unpad_packs_a_padded_batch_inside_the_model():
    reference, fast, _ = models()
    batch = padded_batch(LENGTHS, seed=2)
    fast.unpad = True
    try:
        with torch.no_grad():
            torch.testing.assert_close(fast(**batch)["logits"], reference(**batch)["logits"], atol=1e-5, rtol=0)
    finally:
        fast.unpad = False


def test_train_and_predict_with_unpad(tmp_path, tiny_pretrained):
    """train --unpad, then predict with and without --unpad: the same probabilities,
    and predict's micro-F1 (scikit-learn) is the one fine-tuning reported."""
    import json

    from sklearn.metrics import f1_score
    from sklearn.preprocessing import MultiLabelBinarizer

    from solutions.data import make_demo_corpus, split_train_dev
    from solutions.finetune import FinetuneSettings, finetune
    from solutions.predict import predict_file
    from solutions.tokenization import Tokenizer, train_vocab

    records = make_demo_corpus(n_pages=200, seed=5)
    tokenizer = Tokenizer(train_vocab([r.title + "\n" + r.text for r in records], 600))
    train, dev = split_train_dev(records, dev_fraction=0.25, seed=0)
    summary = finetune(train, dev, tiny_pretrained(tokenizer), tmp_path / "ft",
                       FinetuneSettings(epochs=2, lr=3e-3, max_length=40, unpad=True, multi_label=False,
                                        device="cpu", keep_state=False))
    outputs = {}
    for unpad in (True, False):
        path = tmp_path / f"pred-{unpad}.jsonl"
        predict_file(tmp_path / "ft" / "best", dev, path, output_format="simple", max_length=40,
                     device="cpu", unpad=unpad)
        outputs[unpad] = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["labels"] for r in outputs[True]] == [r["labels"] for r in outputs[False]]
    assert np.allclose([r["probs"] for r in outputs[True]], [r["probs"] for r in outputs[False]], atol=2e-4)
    binarize = MultiLabelBinarizer().fit([r.labels for r in records])
    predicted = binarize.transform([r["labels"] for r in outputs[True]])
    f1 = 100 * f1_score(binarize.transform([r.labels for r in dev]), predicted, average="micro")
    assert f1 == pytest.approx(summary["best"]["dev_micro_f1"], abs=1e-6)


def test_packing_finds_the_cls_rows():
    packing = Packing(torch.tensor([0, 2, 5]), 3, 2)
    assert packing.first_rows.tolist() == [0, 2]
    assert packing.first_tokens_only().offsets.tolist() == [0, 1, 2]


@pytest.mark.parametrize("unpad", [False, True])
def test_compiled_fast_classifier_matches_the_reference(unpad):
    """compile_layers compiles the fast classifier's layer function too (one dynamic
    graph for all lengths); logits and gradients stay those of the reference."""
    from solutions.training import compile_layers

    torch._dynamo.reset()
    reference, fast, _ = models()
    fast.unpad = unpad
    compiled = compile_layers(fast, dynamic=True)
    assert compiled.run_layer is not FastBertForSequenceClassification.run_layer
    for seed, lengths in enumerate(([9, 3, 17, 12], [5, 11, 2])):
        batch = padded_batch(lengths, seed)
        labels = torch.arange(len(lengths)) % len(LABELS)
        for model in (reference, compiled):
            model.zero_grad()
            model(**batch, labels=labels)["loss"].backward()
        with torch.no_grad():
            torch.testing.assert_close(compiled(**batch)["logits"], reference(**batch)["logits"], atol=1e-5, rtol=0)
        expected, got = grads(reference), grads(compiled)
        for name in expected:
            torch.testing.assert_close(got[name], expected[name], atol=1e-5, rtol=1e-4, msg=name)


def test_unpad_keeps_given_positions_and_refuses_batches_it_cannot_pack():
    """Packing reads each row from its first column: rows of [PAD] only, or [PAD] on the
    left, would lose their [CLS]; given position_ids are packed with the tokens."""
    reference, fast, _ = models()
    batch = padded_batch(LENGTHS, seed=3)
    batch["position_ids"] = torch.arange(batch["input_ids"].shape[1]).flip(0)[None]
    fast.unpad = True
    try:
        with torch.no_grad():
            torch.testing.assert_close(fast(**batch)["logits"], reference(**batch)["logits"], atol=1e-5, rtol=0)
            del batch["position_ids"]
            empty_row = {k: v.clone() for k, v in batch.items()}
            empty_row["attention_mask"][1] = 0
            left_padded = {k: v.clone() for k, v in batch.items()}
            for name in left_padded:  # the 3-token row moved to the right end
                left_padded[name][1] = left_padded[name][1].roll(batch["input_ids"].shape[1] - LENGTHS[1])
            for bad in (empty_row, left_padded):
                with pytest.raises(ValueError, match="右側だけ"):
                    fast(**bad)
    finally:
        fast.unpad = False
