"""BERT hyper-parameters, read from and written to a Hugging Face ``config.json``."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path


def read_json_object(path: Path) -> dict:
    """A JSON file that holds one object ({...}), as config.json and tokenizer_config.json
    do; a broken one is named with its line."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{e.lineno}: JSON として読めません ({e.colno} 文字目: {e.msg})") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: UTF-8 として読めません ({e.start + 1} バイト目)") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path}: JSON のオブジェクト ({{...}}) ではありません ({type(value).__name__})")
    return value


@dataclass
class BertConfig:
    vocab_size: int = 32768
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    initializer_range: float = 0.02
    classifier_dropout: float | None = None
    # Classification only: label names in output order, and single/multi-label.
    labels: list[str] = field(default_factory=list)
    multi_label: bool = False
    windows: int = 1  # a long page is read in up to this many chunks (see encoding.window_starts)

    def __post_init__(self):
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                     "intermediate_size", "max_position_embeddings", "type_vocab_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} は 1 以上の整数です ({value!r})")
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout"):
            value = getattr(self, name)
            if name == "classifier_dropout" and value is None:  # None: hidden_dropout_prob
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ValueError(f"{name} は 0 以上 1 以下の数です ({value!r})")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) は num_attention_heads "
                f"({self.num_attention_heads}) で割り切れなければなりません"
            )

    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @classmethod
    def from_hf_dict(cls, d: dict) -> "BertConfig":
        """Build from a Hugging Face config dict (unknown keys are ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in names}
        id2label = d.get("id2label") or {}
        if id2label and "labels" not in d:
            kwargs["labels"] = [id2label[k] for k in sorted(id2label, key=int)]
        kwargs["multi_label"] = d.get("problem_type") == "multi_label_classification"
        return cls(**kwargs)

    def to_hf_dict(self, architecture: str = "BertModel") -> dict:
        d = dataclasses.asdict(self)
        labels, multi_label = d.pop("labels"), d.pop("multi_label")
        if d["windows"] == 1:  # the usual case stays a plain transformers config
            d.pop("windows")
        d.update(model_type="bert", architectures=[architecture],
                 position_embedding_type="absolute", use_cache=True)
        if labels:
            d["id2label"] = {str(i): name for i, name in enumerate(labels)}
            d["label2id"] = {name: i for i, name in enumerate(labels)}
            d["problem_type"] = ("multi_label_classification" if multi_label
                                 else "single_label_classification")
        return d

    @staticmethod
    def unsupported_settings(d: dict) -> list[str]:
        """Settings of a Hugging Face BERT config that our model would silently ignore:
        a decoder (causal attention, cross-attention) or a regression head."""
        wrong = [f"{key}=true" for key in ("is_decoder", "add_cross_attention") if d.get(key)]
        if d.get("problem_type") == "regression":
            wrong.append("problem_type='regression' (回帰)")
        return wrong

    @classmethod
    def load(cls, path: str | Path) -> "BertConfig":
        path = Path(path)
        d = read_json_object(path)
        if d.get("model_type", "bert") != "bert":
            raise ValueError(f"{path}: model_type が 'bert' ではありません ({d['model_type']!r})")
        unsupported = cls.unsupported_settings(d)
        if unsupported:
            raise ValueError(f"{path}: この設定には対応していません ({', '.join(unsupported)})")
        try:
            return cls.from_hf_dict(d)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{path}: 設定値が不正です: {e}") from None

    def save(self, path: str | Path, architecture: str = "BertModel") -> None:
        text = json.dumps(self.to_hf_dict(architecture), ensure_ascii=False, indent=2)
        Path(path).write_text(text + "\n", encoding="utf-8")


# Named sizes for `pretrain --size`. "base" is bert-base-japanese-v3.
SIZES = {
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=256),
    "mini": dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024),
    "small": dict(hidden_size=512, num_hidden_layers=4, num_attention_heads=8, intermediate_size=2048),
    "medium": dict(hidden_size=512, num_hidden_layers=8, num_attention_heads=8, intermediate_size=2048),
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
}
