"""The building blocks against their formulas and PyTorch's own modules."""
import math

import hypothesis.strategies as st
import pytest
import torch
from hypothesis import given, settings
from torch import nn

from solutions.attention import (MultiHeadAttention, fast_scaled_dot_product_attention,
                                 key_padding_mask, scaled_dot_product_attention)
from solutions.config import BertConfig
from solutions.embeddings import BertEmbeddings, one_hot_embedding
from solutions.layers import LayerNorm, layer_norm
from solutions.models import BertModel, decide_labels

TINY = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                  intermediate_size=64, max_position_embeddings=40)


def test_one_hot_times_matrix_is_the_lookup():
    weight = torch.randn(50, 8)
    ids = torch.randint(0, 50, (3, 7))
    torch.testing.assert_close(one_hot_embedding(ids, weight), nn.functional.embedding(ids, weight))


def test_embeddings_are_the_sum_of_three_lookups_then_layernorm():
    emb = BertEmbeddings(TINY).eval()
    ids, segments = torch.randint(5, 50, (2, 6)), torch.tensor([[0, 0, 0, 1, 1, 1]] * 2)
    positions = torch.arange(6).expand(2, 6)
    total = emb.token.weight[ids] + emb.position.weight[positions] + emb.segment.weight[segments]
    expected = nn.functional.layer_norm(total, (32,), emb.norm.weight, emb.norm.bias, TINY.layer_norm_eps)
    torch.testing.assert_close(emb(ids, segments), expected)


def test_attention_formula_by_hand():
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    k = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    v = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    out, probs = scaled_dot_product_attention(q, k, v)
    e = math.exp(1 / math.sqrt(2))
    p = torch.tensor([[e / (e + 1), 1 / (e + 1)], [1 / (e + 1), e / (e + 1)]])
    torch.testing.assert_close(probs, p)
    torch.testing.assert_close(out, p @ v)


def test_padding_keys_get_exactly_zero_probability():
    q = k = v = torch.randn(2, 4, 6, 8)
    attention_mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 0, 0, 0, 0]])
    _, probs = scaled_dot_product_attention(q, k, v, key_padding_mask(attention_mask))
    assert torch.all(probs[0, :, :, 4:] == 0)
    assert torch.all(probs[1, :, :, 2:] == 0)
    torch.testing.assert_close(probs.sum(-1), torch.ones(2, 4, 6))


@given(batch=st.integers(1, 3), seq=st.integers(1, 12), d=st.sampled_from([4, 8, 16]), seed=st.integers(0, 999))
@settings(max_examples=40, deadline=None)
def test_fast_attention_equals_formula(batch, seq, d, seed):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(batch, 2, seq, d, generator=g) for _ in range(3))
    lengths = torch.randint(1, seq + 1, (batch,), generator=g)
    mask = key_padding_mask((torch.arange(seq)[None] < lengths[:, None]).long())
    expected, _ = scaled_dot_product_attention(q, k, v, mask)
    torch.testing.assert_close(fast_scaled_dot_product_attention(q, k, v, mask), expected, atol=1e-5, rtol=1e-5)


def test_multi_head_fast_and_formula_paths_agree():
    mha = MultiHeadAttention(TINY).eval()
    x = torch.randn(2, 5, 32)
    mask = key_padding_mask(torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]))
    fast, no_probs = mha(x, mask)
    slow, probs = mha(x, mask, return_probs=True)
    assert no_probs is None and probs.shape == (2, 4, 5, 5)
    torch.testing.assert_close(fast, slow, atol=1e-6, rtol=1e-5)


def test_multi_head_is_heads_concatenated_then_w_o():
    mha = MultiHeadAttention(TINY).eval()
    x = torch.randn(1, 5, 32)
    out, _ = mha(x)
    heads = []
    for h in range(4):
        cols = slice(h * 8, (h + 1) * 8)
        q = x @ mha.query.weight[cols].T + mha.query.bias[cols]
        k = x @ mha.key.weight[cols].T + mha.key.bias[cols]
        v = x @ mha.value.weight[cols].T + mha.value.bias[cols]
        heads.append(scaled_dot_product_attention(q, k, v)[0])
    torch.testing.assert_close(out, mha.output(torch.cat(heads, dim=-1)), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("eps", [1e-12, 1e-5])
def test_layer_norm_equals_torch(eps):
    x = torch.randn(3, 7, 32) * 5 + 2
    ours, theirs = LayerNorm(32, eps), nn.LayerNorm(32, eps)
    with torch.no_grad():
        for p in (ours.weight, ours.bias):
            p.normal_()
        theirs.load_state_dict(ours.state_dict())
    ours.fast = False
    torch.testing.assert_close(ours(x), theirs(x), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(layer_norm(x, ours.weight, ours.bias, eps), theirs(x), atol=1e-5, rtol=1e-5)


@given(n_pad=st.integers(1, 6), seed=st.integers(0, 999))
@settings(max_examples=15, deadline=None)
def test_appending_pad_never_changes_real_tokens(n_pad, seed):
    torch.manual_seed(seed)
    model = BertModel(TINY).eval()
    ids = torch.randint(5, 50, (2, 8))
    mask = torch.ones_like(ids)
    padded_ids = torch.cat([ids, torch.zeros(2, n_pad, dtype=torch.long)], dim=1)
    padded_mask = torch.cat([mask, torch.zeros(2, n_pad, dtype=torch.long)], dim=1)
    with torch.no_grad():
        a = model(ids, mask)
        b = model(padded_ids, padded_mask)
    torch.testing.assert_close(b["last_hidden_state"][:, :8], a["last_hidden_state"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(b["pooler_output"], a["pooler_output"], atol=1e-5, rtol=1e-5)


def test_decide_labels_single_multi_and_fallback():
    probs = torch.tensor([[0.2, 0.7, 0.6], [0.1, 0.3, 0.2]])
    assert decide_labels(probs, multi_label=False).tolist() == [[False, True, False], [False, True, False]]
    assert decide_labels(probs, multi_label=True).tolist() == [[False, True, True], [False, True, False]]


def test_head_size_must_divide():
    with pytest.raises(ValueError, match="割り切れ"):
        BertConfig(hidden_size=30, num_attention_heads=4)
