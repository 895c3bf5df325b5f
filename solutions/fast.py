"""The [CLS] classifier with less work and the same numbers.

`models.BertForSequenceClassification` is the reference: it runs every layer at
every position of a padded batch. `FastBertForSequenceClassification` computes
the same logits (tests compare the two, and with transformers) in two ways that
skip work:

1. The last layer at [CLS] only. The pooler reads the last layer's first
   position and nothing else, so that layer needs keys and values from every
   position but queries, W^O, the feed-forward network and the LayerNorms at
   position 0 only: about a twelfth of a 12-layer model's work.
2. Packed batches (optional): the sequences end to end, without [PAD]. Linear
   layers, LayerNorm and GELU see (tokens, hidden); attention sees each sequence
   on its own through a nested (jagged) tensor. On a GPU that runs
   FlashAttention, where a padding mask forces the slower memory-efficient kernel.
"""
from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass

import torch

from .attention import fast_scaled_dot_product_attention, key_padding_mask
from .layers import residual_post_ln
from .models import BertForSequenceClassification, classification_loss

# On a CPU, PyTorch's attention on nested tensors converts them to its older layout and warns.
warnings.filterwarnings("ignore", message="The PyTorch API of nested tensors is in prototype stage")


@dataclass(frozen=True)
class Packing:
    """Where each sequence of a packed batch lies: rows offsets[i]:offsets[i + 1]."""
    offsets: torch.Tensor  # (batch + 1,), int64
    max_len: int           # the longest and the shortest sequence, kept on the CPU:
    min_len: int           # attention needs them, and would otherwise wait for the GPU

    @property
    def first_rows(self) -> torch.Tensor:
        """The row of each sequence's first token ([CLS])."""
        return self.offsets[:-1]

    def first_tokens_only(self) -> "Packing":
        """The packing of one token a sequence (the [CLS] rows taken out)."""
        return Packing(torch.arange(len(self.offsets), device=self.offsets.device), 1, 1)


def pack_batch(batch: dict) -> dict:
    """A padded batch ([PAD] on the right, as pad_batch makes it) -> its real
    tokens end to end, with their positions (given, or 0, 1, ...) and the Packing."""
    real = batch["attention_mask"].bool()
    columns = torch.arange(real.shape[1], device=real.device).expand_as(real)
    lengths = real.sum(dim=1)
    right_padded = (real == (columns < lengths[:, None])).all()
    *lengths, right_padded = torch.cat([lengths, right_padded[None]]).tolist()  # on a GPU, the one wait for it
    check_right_padded(lengths, right_padded)
    rows = real.flatten().nonzero_static(size=sum(lengths)).squeeze(1)  # the real tokens
    positions = columns if batch.get("position_ids") is None else batch["position_ids"].expand_as(real)
    offsets = torch.tensor([0, *itertools.accumulate(lengths)], device=real.device)
    packed = {"input_ids": batch["input_ids"].flatten()[rows], "position_ids": positions.flatten()[rows],
              "packing": Packing(offsets, max(lengths), min(lengths))}
    if batch.get("token_type_ids") is not None:
        packed["token_type_ids"] = batch["token_type_ids"].flatten()[rows]
    return packed


def check_right_padded(lengths: list[int], right_padded) -> None:
    """Packing reads each row's tokens from its first column on: a row of [PAD] only,
    or [PAD] on the left, would lose its [CLS]."""
    if min(lengths, default=1) == 0 or not right_padded:
        raise ValueError("[PAD] を除いて詰める (unpad) には、どの行も [CLS] から始まり [PAD] が右側だけに"
                         "あるバッチが必要です (pad_batch が作る形)")


def jagged_heads(x, packing: Packing, num_heads: int):
    """(tokens, hidden) -> nested (batch, heads, its own length, head_size)."""
    heads = x.unflatten(-1, (num_heads, -1)).contiguous()  # nested tensors need contiguous values
    nested = torch.nested.nested_tensor_from_jagged(heads, packing.offsets, max_seqlen=packing.max_len,
                                                    min_seqlen=packing.min_len)
    return nested.transpose(1, 2)


def packed_rows(nested):
    """The inverse of jagged_heads: nested (batch, heads, length, head_size) -> (tokens, hidden)."""
    return nested.transpose(1, 2).values().flatten(-2)


def packed_attention(attention, x, packing: Packing, first_only: bool):
    """MultiHeadAttention on packed rows (no probabilities). first_only: queries at [CLS] only."""
    q, k, v = attention.project_qkv(x)
    queries = packing
    if first_only:
        q, queries = q[packing.first_rows], packing.first_tokens_only()
    dropout_p = attention.dropout_p if attention.training else 0.0
    h = attention.num_heads
    context = fast_scaled_dot_product_attention(jagged_heads(q, queries, h), jagged_heads(k, packing, h),
                                                jagged_heads(v, packing, h), dropout_p=dropout_p)
    return attention.output(packed_rows(context))


def padded_attention(attention, x, mask, first_only: bool):
    """MultiHeadAttention.forward with the fused kernel; first_only: queries at position 0 only."""
    q, k, v = (attention.split_heads(t) for t in attention.project_qkv(x))
    if first_only:
        q = q[:, :, :1]
    dropout_p = attention.dropout_p if attention.training else 0.0
    context = fast_scaled_dot_product_attention(q, k, v, mask, dropout_p)
    return attention.output(attention.merge_heads(context))


def encoder_layer(layer, x, layout, first_only: bool = False):
    """EncoderLayer.forward on a padded batch (layout: mask or None) or a packed one
    (layout: Packing). first_only: the output at the first position ([CLS]) only."""
    if isinstance(layout, Packing):
        attended = packed_attention(layer.attention, x, layout, first_only)
        x = x[layout.first_rows] if first_only else x
    else:
        attended = padded_attention(layer.attention, x, layout, first_only)
        x = x[:, 0] if first_only else x
        attended = attended[:, 0] if first_only else attended
    x = residual_post_ln(x, attended, layer.dropout, layer.attention_norm)
    return residual_post_ln(x, layer.feed_forward(x), layer.dropout, layer.output_norm)


def cls_hidden_state(bert, input_ids, attention_mask=None, token_type_ids=None, position_ids=None,
                     packing: Packing | None = None, run_layer=encoder_layer):
    """The last layer's [CLS] vector, (batch, hidden): what the pooler reads.
    run_layer: encoder_layer, or a compiled copy of it (compile_layers)."""
    if packing is not None:  # packed: rows of one long sequence
        if position_ids is None:
            raise ValueError("詰めたバッチ (packing) には position_ids が必要です (pack_batch が作ります)")
        ids, types, positions = (None if t is None else t[None] for t in (input_ids, token_type_ids, position_ids))
        x, layout = bert.embeddings(ids, types, positions)[0], packing
    else:
        x = bert.embeddings(input_ids, token_type_ids, position_ids)
        layout = None if attention_mask is None else key_padding_mask(attention_mask)
    *lower, last = bert.layers
    for layer in lower:
        x = run_layer(layer, x, layout)
    return run_layer(last, x, layout, first_only=True)


class FastBertForSequenceClassification(BertForSequenceClassification):
    """BertForSequenceClassification (same parameters, same checkpoints, same
    logits) computed through cls_hidden_state. `packing` (from pack_batch) makes
    input_ids, token_type_ids and position_ids packed rows of shape (tokens,).
    With `unpad` set, a padded batch is packed here, on its device."""

    unpad = False
    run_layer = staticmethod(encoder_layer)  # compile_layers puts a compiled copy here

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None,
                labels=None, packing: Packing | None = None):
        if self.unpad and packing is None and attention_mask is not None:
            packed = pack_batch({"input_ids": input_ids, "attention_mask": attention_mask,
                                 "token_type_ids": token_type_ids, "position_ids": position_ids})
            return self(**packed, labels=labels)
        cls = cls_hidden_state(self.bert, input_ids, attention_mask, token_type_ids, position_ids, packing,
                               self.run_layer)
        pooled = self.bert.pooler(cls[:, None])
        logits = self.classifier(self.dropout(pooled))
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = classification_loss(logits, labels, self.config.multi_label)
        return out
