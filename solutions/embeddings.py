"""Input embeddings: token + position + segment, then LayerNorm and dropout."""
from __future__ import annotations

import torch
from torch import nn

from .config import BertConfig
from .layers import LayerNorm


def one_hot_embedding(ids: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """An embedding lookup written as one-hot vectors times the weight matrix.

    ``one_hot_embedding(ids, W)`` equals ``W[ids]``; the lookup is just faster.
    """
    one_hot = torch.nn.functional.one_hot(ids, num_classes=weight.shape[0])
    return one_hot.to(weight.dtype) @ weight


def default_position_ids(input_ids: torch.Tensor) -> torch.Tensor:
    """0, 1, 2, ... for every sequence of the batch."""
    positions = torch.arange(input_ids.shape[-1], device=input_ids.device)
    return positions.expand_as(input_ids)


class BertEmbeddings(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.token = nn.Embedding(config.vocab_size, config.hidden_size,
                                  padding_idx=config.pad_token_id)
        self.position = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.segment = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.norm = LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids, token_type_ids=None, position_ids=None):
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        if position_ids is None:
            position_ids = default_position_ids(input_ids)
        x = self.token(input_ids) + self.position(position_ids) + self.segment(token_type_ids)
        return self.dropout(self.norm(x))
