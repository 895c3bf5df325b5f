"""Scaled dot-product attention and multi-head self-attention."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from .config import BertConfig


def key_padding_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """(batch, seq) with 1 = real, 0 = [PAD]  ->  boolean (batch, 1, 1, seq).

    The two singleton axes broadcast over heads and query positions.
    """
    return attention_mask.bool()[:, None, None, :]


def scaled_dot_product_attention(q, k, v, mask=None, dropout_p: float = 0.0):
    """softmax(Q Kᵀ / √d_k) V, written from the formula.

    q, k, v: (..., seq, d_k). mask: boolean, True where a key may be attended,
    broadcastable to (..., seq_q, seq_k). Masked keys get -inf before the softmax,
    so their probability is exactly 0. Returns (output, probabilities).
    """
    d_k = q.shape[-1]
    scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    if dropout_p:
        probs = F.dropout(probs, p=dropout_p)
    return probs @ v, probs


# PyTorch's fused attention kernels, cuDNN's left out: cuDNN builds a new plan
# (tenths of a second) for every new sequence length, which length-bucketed
# batches bring at almost every step. Measured on an H200: 4x slower training.
FUSED_KERNELS = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]


def fast_scaled_dot_product_attention(q, k, v, mask=None, dropout_p: float = 0.0):
    """The same computation through PyTorch's fused kernel (no probabilities).
    Without a mask, FlashAttention; with one, the memory-efficient kernel."""
    with sdpa_kernel(FUSED_KERNELS):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)


class MultiHeadAttention(nn.Module):
    """Project to Q, K, V; split into heads; attend; concatenate; apply W^O."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.head_size = config.head_size
        hidden = config.hidden_size
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.output = nn.Linear(hidden, hidden)  # W^O
        self.dropout_p = config.attention_probs_dropout_prob
        self.fast = True  # use the fused kernel unless probabilities are wanted

    def split_heads(self, x):
        """(batch, seq, hidden) -> (batch, heads, seq, head_size)."""
        batch, seq, _ = x.shape
        return x.view(batch, seq, self.num_heads, self.head_size).transpose(1, 2)

    def merge_heads(self, x):
        """(batch, heads, seq, head_size) -> (batch, seq, hidden): the concatenation."""
        batch, _, seq, _ = x.shape
        return x.transpose(1, 2).reshape(batch, seq, self.num_heads * self.head_size)

    def project_qkv(self, x):
        """Q, K and V in one matrix product (the three weights side by side)."""
        weight = torch.cat([self.query.weight, self.key.weight, self.value.weight])
        bias = torch.cat([self.query.bias, self.key.bias, self.value.bias])
        return F.linear(x, weight, bias).chunk(3, dim=-1)

    def forward(self, x, mask=None, return_probs: bool = False):
        q, k, v = (self.split_heads(t) for t in self.project_qkv(x))
        dropout_p = self.dropout_p if self.training else 0.0
        if self.fast and not return_probs:
            context, probs = fast_scaled_dot_product_attention(q, k, v, mask, dropout_p), None
        else:
            context, probs = scaled_dot_product_attention(q, k, v, mask, dropout_p)
        return self.output(self.merge_heads(context)), probs
