"""The fast paths (no mask without [PAD], compiled layers) compute what the plain code does."""
import copy

import pytest
import torch
import transformers

from solutions.checkpoints import to_hf_state_dict
from solutions.config import BertConfig
from solutions.models import BertForSequenceClassification, BertModel
from solutions.training import batch_to_device, compile_layers

TINY = dict(vocab_size=120, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=128, max_position_embeddings=64)
LABELS = ["a", "b", "c"]


def full_batch(seed=0, batch=3, seq=11):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, TINY["vocab_size"], (batch, seq), generator=g)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids),
            "token_type_ids": (torch.arange(seq) >= seq // 2).long().expand(batch, seq)}


def test_no_mask_equals_an_all_ones_mask_and_transformers():
    torch.manual_seed(0)
    ours = BertModel(BertConfig(**TINY)).eval()
    theirs = transformers.BertModel._from_config(transformers.BertConfig(**TINY), attn_implementation="sdpa").eval()
    theirs.load_state_dict(to_hf_state_dict(ours), strict=False)
    batch = full_batch()
    without = {k: v for k, v in batch.items() if k != "attention_mask"}
    with torch.no_grad():
        masked, unmasked = ours(**batch)["last_hidden_state"], ours(**without)["last_hidden_state"]
        reference = theirs(**batch).last_hidden_state
    torch.testing.assert_close(unmasked, masked, atol=1e-6, rtol=0)
    torch.testing.assert_close(unmasked, reference, atol=1e-5, rtol=0)


def test_batch_to_device_drops_only_masks_without_padding():
    full = full_batch()
    assert "attention_mask" not in batch_to_device(full, torch.device("cpu"))
    padded = dict(full, attention_mask=full["attention_mask"].clone())
    padded["attention_mask"][0, -3:] = 0
    moved = batch_to_device(padded, torch.device("cpu"))
    assert torch.equal(moved["attention_mask"], padded["attention_mask"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="GPU がありません")
def test_to_device_copies_from_pinned_memory_and_leaves_gpu_tensors_alone():
    from solutions.training import to_device

    cpu = torch.arange(1000)
    on_gpu = to_device(cpu, torch.device("cuda"))
    torch.cuda.synchronize()
    assert on_gpu.is_cuda and torch.equal(on_gpu.cpu(), cpu)
    assert to_device(on_gpu, torch.device("cuda")) is on_gpu  # pin_memory() would refuse it


def classifier(dropout=0.0):
    torch.manual_seed(1)
    return BertForSequenceClassification(BertConfig(**TINY, labels=LABELS, hidden_dropout_prob=dropout,
                                                    attention_probs_dropout_prob=dropout))


@pytest.mark.parametrize("dynamic", [None, True])
def test_compiled_layers_train_like_plain_layers(dynamic):
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    plain = classifier()
    compiled = compile_layers(copy.deepcopy(plain), dynamic=dynamic)
    assert set(compiled.state_dict()) == set(plain.state_dict())  # checkpoints keep their names
    for seq in (11, 7):  # two lengths: the dynamic graph serves both
        batch = full_batch(seed=seq, seq=seq)
        batch["attention_mask"][1, -2:] = 0
        labels = torch.tensor([0, 2, 1])
        for model in (plain, compiled):
            model.zero_grad()
            model(**batch, labels=labels)["loss"].backward()
        torch.testing.assert_close(compiled(**batch)["logits"], plain(**batch)["logits"], atol=1e-5, rtol=0)
        for (name, a), (_, b) in zip(compiled.named_parameters(), plain.named_parameters(), strict=True):
            torch.testing.assert_close(a.grad, b.grad, atol=1e-5, rtol=1e-4, msg=name)
    graphs = counters["stats"]["unique_graphs"]
    # Both layers share one compiled graph; with dynamic=True it serves both lengths too.
    assert graphs == 1 if dynamic else 1 <= graphs <= 2, graphs
