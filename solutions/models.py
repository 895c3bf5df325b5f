"""BERT: the encoder stack, the MLM head and the [CLS] classifier."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .attention import key_padding_mask
from .config import BertConfig
from .embeddings import BertEmbeddings
from .layers import EncoderLayer, LayerNorm, activation


class Pooler(nn.Module):
    """tanh(W · h_[CLS] + b): the sentence vector BERT's NSP head was trained on."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden):
        return torch.tanh(self.dense(hidden[:, 0]))


def init_weights(module: nn.Module, std: float) -> None:
    """BERT's initialisation: N(0, std) weights, zero biases, LayerNorm = identity."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=std)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)
    if isinstance(module, nn.Embedding) and module.padding_idx is not None:
        with torch.no_grad():
            module.weight[module.padding_idx].zero_()
    if isinstance(module, LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class BertModel(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        self.embeddings = BertEmbeddings(config)
        self.layers = nn.ModuleList(EncoderLayer(config) for _ in range(config.num_hidden_layers))
        self.pooler = Pooler(config)
        self.apply(lambda m: init_weights(m, config.initializer_range))

    def forward(self, input_ids, attention_mask=None, token_type_ids=None,
                position_ids=None, return_probs: bool = False):
        """Returns a dict: last_hidden_state, pooler_output and, on request,
        attentions (one (batch, heads, seq, seq) tensor per layer)."""
        # No mask means no [PAD]: the fused attention kernel is fastest without one.
        mask = None if attention_mask is None else key_padding_mask(attention_mask)
        x = self.embeddings(input_ids, token_type_ids, position_ids)
        attentions = []
        for layer in self.layers:
            x, probs = layer(x, mask, return_probs)
            attentions.append(probs)
        out = {"last_hidden_state": x, "pooler_output": self.pooler(x)}
        if return_probs:
            out["attentions"] = attentions
        return out


class MLMHead(nn.Module):
    """Transform (dense, GELU, LayerNorm), then scores over the vocabulary.

    The output matrix is the token embedding matrix itself (tied weights)."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.act = activation(config.hidden_act)
        self.norm = LayerNorm(config.hidden_size, config.layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, hidden, token_embedding_weight):
        h = self.norm(self.act(self.dense(hidden)))
        return F.linear(h, token_embedding_weight, self.bias)


class BertForMaskedLM(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        self.bert = BertModel(config)
        self.mlm_head = MLMHead(config)
        init_weights(self.mlm_head.dense, config.initializer_range)

    def vocabulary_scores(self, hidden):
        """The decoder is the token embedding matrix itself (tied weights)."""
        return self.mlm_head(hidden, self.bert.embeddings.token.weight)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None,
                position_ids=None, labels=None):
        """labels: the original ids at masked positions, -100 elsewhere."""
        hidden = self.bert(input_ids, attention_mask, token_type_ids, position_ids)["last_hidden_state"]
        if labels is not None:
            # Score only the masked positions: the rest would be thrown away.
            selected = labels != -100
            logits = self.vocabulary_scores(hidden[selected])
            return {"logits": logits, "loss": F.cross_entropy(logits, labels[selected])}
        return {"logits": self.vocabulary_scores(hidden)}


class BertForSequenceClassification(nn.Module):
    """The pooled [CLS] vector -> dropout -> one linear layer -> a score per label."""

    def __init__(self, config: BertConfig):
        super().__init__()
        if not config.labels:
            raise ValueError("分類モデルには config.labels (ラベル名のリスト) が必要です")
        self.config = config
        self.bert = BertModel(config)
        dropout = config.classifier_dropout
        self.dropout = nn.Dropout(config.hidden_dropout_prob if dropout is None else dropout)
        self.classifier = nn.Linear(config.hidden_size, len(config.labels))
        init_weights(self.classifier, config.initializer_range)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None,
                position_ids=None, labels=None):
        """labels: class indices (single-label) or a multi-hot float matrix (multi-label)."""
        pooled = self.bert(input_ids, attention_mask, token_type_ids, position_ids)["pooler_output"]
        logits = self.classifier(self.dropout(pooled))
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = classification_loss(logits, labels, self.config.multi_label)
        return out


def classification_loss(logits, labels, multi_label: bool):
    """Cross-entropy over a softmax, or binary cross-entropy per label."""
    if multi_label:
        return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))
    return F.cross_entropy(logits, labels)


def label_probabilities(logits, multi_label: bool):
    """softmax over labels (exactly one is right) or a sigmoid per label."""
    return torch.sigmoid(logits) if multi_label else torch.softmax(logits, dim=-1)


def decide_labels(probs, multi_label: bool, threshold: float = 0.5):
    """Boolean (batch, labels): the argmax, or every label above the threshold
    (the argmax when none is)."""
    best = F.one_hot(probs.argmax(dim=-1), probs.shape[-1]).bool()
    if not multi_label:
        return best
    chosen = probs > threshold
    none_chosen = ~chosen.any(dim=-1, keepdim=True)
    return chosen | (best & none_chosen)
