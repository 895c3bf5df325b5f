"""LayerNorm, the feed-forward network, and the Transformer encoder layer."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import BertConfig


def layer_norm(x, gain, bias, eps: float = 1e-12):
    """y = γ · (x − mean) / sqrt(var + eps) + β over the last axis."""
    mean = x.mean(dim=-1, keepdim=True)
    var = x.var(dim=-1, keepdim=True, unbiased=False)
    return gain * (x - mean) / torch.sqrt(var + eps) + bias


class LayerNorm(nn.Module):
    """Layer normalisation with a learned gain γ (``weight``) and bias β."""

    def __init__(self, size: int, eps: float = 1e-12):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.bias = nn.Parameter(torch.zeros(size))
        self.eps = eps
        self.fast = True  # PyTorch's fused kernel; same result as the formula

    def forward(self, x):
        if self.fast:
            return F.layer_norm(x, x.shape[-1:], self.weight, self.bias, self.eps)
        return layer_norm(x, self.weight, self.bias, self.eps)


ACTIVATIONS = {
    "gelu": F.gelu,
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
}


def activation(name: str):
    if name not in ACTIVATIONS:
        raise ValueError(f"未対応の活性化関数です: hidden_act={name!r} (対応: {sorted(ACTIVATIONS)})")
    return ACTIVATIONS[name]


class FeedForward(nn.Module):
    """Position-wise MLP: hidden -> intermediate (GELU) -> hidden."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.up = nn.Linear(config.hidden_size, config.intermediate_size)
        self.down = nn.Linear(config.intermediate_size, config.hidden_size)
        self.act = activation(config.hidden_act)

    def forward(self, x):
        return self.down(self.act(self.up(x)))


def residual_post_ln(x, sublayer_out, dropout: nn.Module, norm: nn.Module):
    """Post-LN residual connection, as in BERT: LayerNorm(x + Dropout(Sublayer(x)))."""
    return norm(x + dropout(sublayer_out))


class EncoderLayer(nn.Module):
    """Self-attention and feed-forward, each wrapped in residual + LayerNorm."""

    def __init__(self, config: BertConfig):
        super().__init__()
        from .attention import MultiHeadAttention  # attention.py imports config only

        self.attention = MultiHeadAttention(config)
        self.attention_norm = LayerNorm(config.hidden_size, config.layer_norm_eps)
        self.feed_forward = FeedForward(config)
        self.output_norm = LayerNorm(config.hidden_size, config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, x, mask=None, return_probs: bool = False):
        attended, probs = self.attention(x, mask, return_probs)
        x = residual_post_ln(x, attended, self.dropout, self.attention_norm)
        x = residual_post_ln(x, self.feed_forward(x), self.dropout, self.output_norm)
        return x, probs
