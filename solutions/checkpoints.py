"""Load and save BERT checkpoints in the Hugging Face layout.

A checkpoint directory (the layout of tohoku-nlp/bert-base-japanese-v3) holds
config.json, model.safetensors (or pytorch_model.bin), vocab.txt and
tokenizer_config.json. Our modules use their own readable parameter names;
the two functions below translate between them and Hugging Face's names.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .config import BertConfig, read_json_object
from .models import BertForMaskedLM, BertForSequenceClassification, BertModel

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
# A checkpoint too big for one file: an index (which file holds each weight) and the shards.
SHARD_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
SHARD_PATTERNS = ("model-*-of-*.safetensors", "pytorch_model-*-of-*.bin")

# Our module name -> Hugging Face's, inside layer N ("layers.N." / "encoder.layer.N.").
LAYER_MODULES = {
    "attention.query": "attention.self.query",
    "attention.key": "attention.self.key",
    "attention.value": "attention.self.value",
    "attention.output": "attention.output.dense",
    "attention_norm": "attention.output.LayerNorm",
    "feed_forward.up": "intermediate.dense",
    "feed_forward.down": "output.dense",
    "output_norm": "output.LayerNorm",
}
# Our module name -> Hugging Face's, outside the layers.
OTHER_MODULES = {
    "embeddings.token": "embeddings.word_embeddings",
    "embeddings.position": "embeddings.position_embeddings",
    "embeddings.segment": "embeddings.token_type_embeddings",
    "embeddings.norm": "embeddings.LayerNorm",
    "pooler.dense": "pooler.dense",
    "mlm_head.dense": "cls.predictions.transform.dense",
    "mlm_head.norm": "cls.predictions.transform.LayerNorm",
    "classifier": "classifier",
}
# Whole parameter names that are not "<module>.<weight|bias>".
OTHER_PARAMETERS = {"mlm_head.bias": "cls.predictions.bias"}
# Parts that may be absent from a checkpoint and are then freshly initialised:
# the task heads, and the pooler (transformers' BertForMaskedLM has none).
FRESH_IF_MISSING = ("mlm_head.", "classifier.", "pooler.", "bert.pooler.")
# Keys we do not keep: the tied decoder, the next-sentence head, buffers.
HF_IGNORED = ("cls.predictions.decoder.", "cls.seq_relationship.", "position_ids")
LAYER_KEY = re.compile(r"^(layers|encoder\.layer)\.(\d+)\.(.+)\.(weight|bias)$")


def _invert(mapping: dict) -> dict:
    return {v: k for k, v in mapping.items()}


def rename(key: str, layer_modules: dict, other_modules: dict, other_parameters: dict,
           layer_prefix: str) -> str | None:
    """Rename one parameter key with the given tables; None if it has no counterpart."""
    if key in other_parameters:
        return other_parameters[key]
    if match := LAYER_KEY.match(key):
        _, index, module, param = match.groups()
        if module in layer_modules:
            return f"{layer_prefix}.{index}.{layer_modules[module]}.{param}"
        return None
    module, _, param = key.rpartition(".")
    if module in other_modules:
        return f"{other_modules[module]}.{param}"
    return None


def hf_key_to_ours(key: str) -> str | None:
    """'bert.encoder.layer.0.attention.self.query.weight' -> 'layers.0.attention.query.weight'."""
    if any(part in key for part in HF_IGNORED):
        return None
    key = key.removeprefix("bert.")
    if "LayerNorm." in key:  # very old checkpoints call γ, β gamma and beta
        key = key.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")
    return rename(key, _invert(LAYER_MODULES), _invert(OTHER_MODULES),
                  _invert(OTHER_PARAMETERS), "layers")


def our_key_to_hf(key: str) -> str:
    """The inverse of hf_key_to_ours (without the 'bert.' prefix)."""
    hf_key = rename(key, LAYER_MODULES, OTHER_MODULES, OTHER_PARAMETERS, "encoder.layer")
    if hf_key is None:
        raise KeyError(f"Hugging Face 形式に対応する名前がありません: {key}")
    return hf_key


ARCHITECTURES = {
    BertModel: "BertModel",
    BertForMaskedLM: "BertForMaskedLM",
    BertForSequenceClassification: "BertForSequenceClassification",
}


def architecture(model) -> str:
    """transformers' class name for our model (or a subclass of it, such as the fast classifier)."""
    return next(name for cls, name in ARCHITECTURES.items() if isinstance(model, cls))


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded; the message names the file and key."""


def encoder_prefix(model) -> str:
    """Where the encoder's parameters live in our model: '' or 'bert.'."""
    return "" if isinstance(model, BertModel) else "bert."


def to_hf_state_dict(model) -> dict[str, torch.Tensor]:
    """Our parameters under Hugging Face's names, ready for model.safetensors."""
    state = {}
    for key, tensor in model.state_dict().items():
        if key.startswith("bert."):
            hf_key = "bert." + our_key_to_hf(key.removeprefix("bert."))
        else:
            hf_key = our_key_to_hf(key)
        state[hf_key] = tensor.detach().contiguous().cpu()
    return state


def from_hf_state_dict(hf_state: dict[str, torch.Tensor], model) -> dict[str, torch.Tensor]:
    """Hugging Face names -> our names for this model (encoder keys get its prefix)."""
    prefix = encoder_prefix(model)
    state = {}
    for hf_key, tensor in hf_state.items():
        key = hf_key_to_ours(hf_key)
        if key is None:
            continue
        is_head = key.startswith(("mlm_head.", "classifier."))
        state[key if is_head else prefix + key] = tensor
    return state


def find_weights(directory: Path) -> Path:
    for name in WEIGHT_FILES + SHARD_INDEXES:
        if (directory / name).exists():
            return directory / name
    raise CheckpointError(
        f"{directory}: 重みファイルがありません (探したもの: {', '.join(WEIGHT_FILES + SHARD_INDEXES)})。"
        " Hugging Face 形式の BERT チェックポイントのディレクトリを指定してください"
    )


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """One weight file, or every shard named by an index (*.index.json)."""
    if path.name.endswith(".index.json"):
        return read_shards(path)
    try:
        if path.suffix == ".safetensors":
            return load_file(str(path))
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 (safetensors, zip, pickle: each fails in its own way on a cut file)
        raise CheckpointError(f"{path}: 重みファイルが読めません (壊れているか、途中で切れています: "
                              f"{type(e).__name__}: {str(e)[:120]})") from None


def read_shards(index_path: Path) -> dict[str, torch.Tensor]:
    state = {}
    for shard in shard_names(index_path):
        if not (index_path.parent / shard).is_file():
            raise CheckpointError(f"{index_path}: そこに書かれた重みファイル {shard} がありません")
        state.update(read_weights(index_path.parent / shard))
    return state


def shard_names(index_path: Path) -> list[str]:
    """The weight files an index names in its weight_map: plain file names beside it."""
    weight_map = read_json_object(index_path).get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise CheckpointError(f"{index_path}: weight_map (重みの名前 → ファイル名) がありません")
    names = sorted({name for name in weight_map.values() if isinstance(name, str)})
    bad = [name for name in weight_map.values() if not isinstance(name, str)] + [
        name for name in names if Path(name).name != name or not name.endswith((".safetensors", ".bin"))]
    if bad:
        raise CheckpointError(f"{index_path}: weight_map のファイル名が不正です ({bad[0]!r})。"
                              "同じフォルダの .safetensors か .bin のファイル名にしてください")
    return names


def with_tied_names(hf_state: dict[str, torch.Tensor], weights_path: Path) -> dict[str, torch.Tensor]:
    """transformers ties the MLM decoder to the token embeddings (and its bias to
    cls.predictions.bias). A checkpoint may hold the bias under the decoder's name
    only; a decoder of its own (tie_word_embeddings=false) our MLM head cannot use."""
    decoder, embeddings = (hf_state.get(k) for k in ("cls.predictions.decoder.weight",
                                                      "bert.embeddings.word_embeddings.weight"))
    if decoder is not None and embeddings is not None and not torch.equal(decoder, embeddings):
        raise CheckpointError(f"{weights_path}: MLM の出力層 (cls.predictions.decoder) が単語埋め込みと別の重みです "
                              "(tie_word_embeddings=false)。重みを共有するモデルだけを扱えます")
    if "cls.predictions.bias" not in hf_state and "cls.predictions.decoder.bias" in hf_state:
        hf_state = {**hf_state, "cls.predictions.bias": hf_state["cls.predictions.decoder.bias"]}
    return hf_state


def resolve_checkpoint(name_or_path: str | Path) -> Path:
    """A local directory as it is, or a Hugging Face model id downloaded to the cache."""
    path = Path(name_or_path)
    if path.is_dir():
        return path
    local = str(name_or_path).startswith((".", "/")) or str(name_or_path).count("/") != 1 or path.parent.is_dir()
    if path.exists() or local:  # (runs/ft is a folder here, not the model id "runs/ft")
        raise CheckpointError(f"{name_or_path}: チェックポイントのディレクトリが見つかりません")
    from huggingface_hub import snapshot_download

    patterns = ["config.json", "vocab.txt", "tokenizer_config.json", *WEIGHT_FILES, *SHARD_INDEXES, *SHARD_PATTERNS]
    try:
        return Path(snapshot_download(str(name_or_path), allow_patterns=patterns))
    except Exception as e:  # offline, unknown id, ...
        raise CheckpointError(
            f"{name_or_path}: Hugging Face Hub から取得できません ({type(e).__name__})。"
            " オフラインならローカルのディレクトリを指定してください"
        ) from None


def check_shapes(state, model, weights_path: Path) -> None:
    expected = model.state_dict()
    for key, tensor in state.items():
        if key in expected and expected[key].shape != tensor.shape:
            raise CheckpointError(
                f"{weights_path}: '{our_key_to_hf(key.removeprefix('bert.'))}' の形 "
                f"{tuple(tensor.shape)} が config.json の設定から決まる形 "
                f"{tuple(expected[key].shape)} と一致しません"
            )


def load_model(name_or_path, model_class=BertModel, *, labels=None, multi_label=None,
               config_overrides=None):
    """Build `model_class` from a checkpoint directory (or model id) and load its weights.

    Heads and a pooler missing from the checkpoint (e.g. a classifier on top of a
    pre-trained encoder) keep their fresh initialisation; a missing encoder weight
    is an error.
    Returns (model, missing_keys).
    """
    directory = resolve_checkpoint(name_or_path)
    config_path = directory / "config.json"
    if not config_path.exists():
        if (directory / "best" / "config.json").is_file():  # train's --out instead of its best/
            raise CheckpointError(f"{directory}: train の出力フォルダです。その中の {directory / 'best'} を指定してください")
        raise CheckpointError(f"{directory}: config.json がありません (Hugging Face 形式ではありません)")
    config = BertConfig.load(config_path)
    # A classifier fine-tuned for other labels: keep its encoder, start a new classifier.
    relabelled = labels is not None and bool(config.labels) and list(config.labels) != list(labels)
    if relabelled:
        print(f"注意: {directory} の分類層はほかのラベル ({len(config.labels)} 種類) のものなので使わず、"
              f"新しいラベル {len(labels)} 種類の分類層を作ります", file=sys.stderr)
    if labels is not None:
        config.labels = list(labels)
    if multi_label is not None:
        config.multi_label = multi_label
    for key, value in (config_overrides or {}).items():
        setattr(config, key, value)
    model = model_class(config)
    weights_path = find_weights(directory)
    hf_state = read_weights(weights_path)
    if isinstance(model, BertForMaskedLM):
        hf_state = with_tied_names(hf_state, weights_path)
    state = from_hf_state_dict(hf_state, model)
    if relabelled:
        state = {key: value for key, value in state.items() if not key.startswith("classifier.")}
    check_shapes(state, model, weights_path)
    result = model.load_state_dict(state, strict=False)
    encoder_missing = [k for k in result.missing_keys if not k.startswith(FRESH_IF_MISSING)]
    if encoder_missing:
        hf_name = our_key_to_hf(encoder_missing[0].removeprefix("bert."))
        raise CheckpointError(f"{weights_path}: '{hf_name}' がありません (ほか {len(encoder_missing) - 1} 個)")
    return model, result.missing_keys


def check_vocab(tokenizer, model, directory) -> None:
    """Every id of the tokenizer has a row in the model's embeddings (a model may have
    more rows than tokens: some pad the matrix to a round size)."""
    if tokenizer.vocab_size > model.config.vocab_size:
        raise CheckpointError(
            f"{directory}: vocab.txt の語彙数 ({tokenizer.vocab_size}) が config.json の "
            f"vocab_size ({model.config.vocab_size}) より多く、埋め込みのない ID があります")


def save_model(model, directory, tokenizer=None) -> Path:
    """Write config.json + model.safetensors (+ the tokenizer files) in the HF layout."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.config.save(directory / "config.json", architecture(model))
    save_file(to_hf_state_dict(model), str(directory / "model.safetensors"), metadata={"format": "pt"})
    if tokenizer is not None:
        tokenizer.save(directory)
    return directory
