"""Our BERT against transformers' BERT: same weights must give the same outputs."""
import pytest
import torch
import transformers

from solutions.checkpoints import from_hf_state_dict, to_hf_state_dict
from solutions.config import BertConfig
from solutions.models import BertForMaskedLM, BertForSequenceClassification, BertModel

ATOL = 1e-5
TINY = dict(vocab_size=120, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=128, max_position_embeddings=64)
LABELS = ["1.1", "1.5.1.3", "1.7.13.6"]
PAIRS = [  # (ours, transformers', what to compare)
    (BertModel, transformers.BertModel, ("last_hidden_state", "pooler_output")),
    (BertForMaskedLM, transformers.BertForMaskedLM, ("logits",)),
    (BertForSequenceClassification, transformers.BertForSequenceClassification, ("logits",)),
]
max_diff_seen = {}


def hf_config(multi_label=False):
    cfg = transformers.BertConfig(**TINY, num_labels=len(LABELS))
    if multi_label:
        cfg.problem_type = "multi_label_classification"
    return cfg


def padded_batch(seed=0, batch=4, seq=17):
    g = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(5, TINY["vocab_size"], (batch, seq), generator=g)
    lengths = torch.tensor([seq, seq - 5, 3, seq - 1])[:batch]
    attention_mask = (torch.arange(seq)[None, :] < lengths[:, None]).long()
    input_ids[:, 0] = 2
    input_ids = input_ids.masked_fill(attention_mask == 0, 0)
    token_type_ids = (torch.arange(seq)[None, :] >= (lengths[:, None] // 2)).long() * attention_mask
    return dict(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)


def hf_model(hf_class, attn, cfg):
    torch.manual_seed(1)
    return hf_class._from_config(cfg, attn_implementation=attn).eval()


def our_model(our_class):
    torch.manual_seed(2)
    return our_class(BertConfig(**TINY, labels=LABELS)).eval()


def assert_same_outputs(ours, theirs, keys, batch, name):
    with torch.no_grad():
        a, b = ours(**batch), theirs(**batch)
    for key in keys:
        diff = (a[key] - b[key]).abs().max().item()
        max_diff_seen[f"{name}.{key}"] = max(diff, max_diff_seen.get(f"{name}.{key}", 0.0))
        torch.testing.assert_close(a[key], b[key], atol=ATOL, rtol=0, msg=f"{name}: {key} differs by {diff}")


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize("our_class,hf_class,keys", PAIRS, ids=lambda x: getattr(x, "__name__", ""))
def test_hf_weights_into_ours(our_class, hf_class, keys, attn):
    theirs = hf_model(hf_class, attn, hf_config())
    ours = our_model(our_class)
    result = ours.load_state_dict(from_hf_state_dict(theirs.state_dict(), ours), strict=False)
    # transformers' BertForMaskedLM has no pooler; nothing else may be missing.
    assert all(k.startswith("bert.pooler") for k in result.missing_keys), result.missing_keys
    assert not result.unexpected_keys
    for seed in range(3):
        assert_same_outputs(ours, theirs, keys, padded_batch(seed), f"hf->ours/{our_class.__name__}/{attn}")


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize("our_class,hf_class,keys", PAIRS, ids=lambda x: getattr(x, "__name__", ""))
def test_our_weights_into_hf(our_class, hf_class, keys, attn):
    ours = our_model(our_class)
    theirs = hf_model(hf_class, attn, hf_config())
    result = theirs.load_state_dict(to_hf_state_dict(ours), strict=False)
    assert all("decoder" in k for k in result.missing_keys), result.missing_keys
    assert all(k.startswith("bert.pooler") for k in result.unexpected_keys), result.unexpected_keys
    if hasattr(theirs, "tie_weights"):
        theirs.tie_weights()
    assert_same_outputs(ours, theirs, keys, padded_batch(7), f"ours->hf/{our_class.__name__}/{attn}")


def test_attention_maps_match_transformers_eager():
    theirs = hf_model(transformers.BertModel, "eager", hf_config())
    ours = our_model(BertModel)
    ours.load_state_dict(from_hf_state_dict(theirs.state_dict(), ours))
    batch = padded_batch(3)
    with torch.no_grad():
        a = ours(**batch, return_probs=True)["attentions"]
        b = theirs(**batch, output_attentions=True).attentions
    for ours_layer, theirs_layer in zip(a, b, strict=True):
        torch.testing.assert_close(ours_layer, theirs_layer, atol=ATOL, rtol=0)


def test_multi_label_loss_matches_transformers():
    theirs = hf_model(transformers.BertForSequenceClassification, "sdpa", hf_config(multi_label=True))
    ours = BertForSequenceClassification(BertConfig(**TINY, labels=LABELS, multi_label=True)).eval()
    ours.load_state_dict(from_hf_state_dict(theirs.state_dict(), ours))
    batch = padded_batch(4)
    labels = torch.tensor([[1, 0, 1], [0, 1, 0], [0, 0, 1], [1, 1, 0]], dtype=torch.float)
    with torch.no_grad():
        a, b = ours(**batch, labels=labels), theirs(**batch, labels=labels)
    torch.testing.assert_close(a["loss"], b.loss, atol=ATOL, rtol=0)


def test_single_label_loss_matches_transformers():
    theirs = hf_model(transformers.BertForSequenceClassification, "eager", hf_config())
    ours = our_model(BertForSequenceClassification)
    ours.load_state_dict(from_hf_state_dict(theirs.state_dict(), ours))
    batch, labels = padded_batch(5), torch.tensor([0, 2, 1, 2])
    with torch.no_grad():
        a, b = ours(**batch, labels=labels), theirs(**batch, labels=labels)
    torch.testing.assert_close(a["loss"], b.loss, atol=ATOL, rtol=0)


def test_mlm_loss_matches_transformers():
    theirs = hf_model(transformers.BertForMaskedLM, "sdpa", hf_config())
    ours = our_model(BertForMaskedLM)
    ours.load_state_dict(from_hf_state_dict(theirs.state_dict(), ours), strict=False)
    batch = padded_batch(6)
    labels = torch.full_like(batch["input_ids"], -100)
    labels[:, 1:3] = batch["input_ids"][:, 1:3]
    with torch.no_grad():
        a, b = ours(**batch, labels=labels), theirs(**batch, labels=labels)
    torch.testing.assert_close(a["loss"], b.loss, atol=ATOL, rtol=0)


def test_report_largest_difference(capsys):
    """Prints the largest difference seen (for the closing note; run with -s)."""
    if max_diff_seen:
        with capsys.disabled():
            print("\nlargest |ours - transformers|:", max(max_diff_seen.values()))
