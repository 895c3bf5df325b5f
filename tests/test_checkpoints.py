"""Saving and loading checkpoints in the Hugging Face layout."""
import json

import pytest
import torch
import transformers
from safetensors.torch import load_file, save_file

from solutions.checkpoints import CheckpointError, load_model, save_model, to_hf_state_dict
from solutions.config import BertConfig
from solutions.models import BertForMaskedLM, BertForSequenceClassification, BertModel

TINY = dict(vocab_size=90, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=64, max_position_embeddings=40)


def batch():
    ids = torch.randint(5, 90, (2, 9))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    return dict(input_ids=ids.masked_fill(mask == 0, 0), attention_mask=mask)


@pytest.mark.parametrize("ours_cls,hf_cls,key", [
    (BertModel, transformers.AutoModel, "last_hidden_state"),
    (BertForMaskedLM, transformers.AutoModelForMaskedLM, "logits"),
    (BertForSequenceClassification, transformers.AutoModelForSequenceClassification, "logits"),
])
def test_save_then_transformers_from_pretrained_then_our_load(tmp_path, ours_cls, hf_cls, key):
    ours = ours_cls(BertConfig(**TINY, labels=["a", "b", "c"])).eval()
    save_model(ours, tmp_path / "ckpt")
    theirs = hf_cls.from_pretrained(tmp_path / "ckpt").eval()
    b = batch()
    with torch.no_grad():
        torch.testing.assert_close(ours(**b)[key], theirs(**b)[key], atol=1e-5, rtol=0)
    if ours_cls is BertForSequenceClassification:
        assert theirs.config.id2label == {0: "a", 1: "b", 2: "c"}
    # transformers saves it again; our loader reads transformers' files.
    theirs.save_pretrained(tmp_path / "again")
    back, missing = load_model(tmp_path / "again", ours_cls)
    assert not [k for k in missing if not k.startswith("bert.pooler")]
    with torch.no_grad():
        torch.testing.assert_close(back.eval()(**b)[key], ours(**b)[key], atol=1e-5, rtol=0)


def test_classifier_on_a_pretrained_encoder_keeps_a_fresh_head(tmp_path):
    save_model(BertForMaskedLM(BertConfig(**TINY)), tmp_path / "mlm")
    model, missing = load_model(tmp_path / "mlm", BertForSequenceClassification, labels=["x", "y"])
    assert set(missing) == {"classifier.weight", "classifier.bias"}
    assert model.classifier.out_features == 2


def test_pytorch_model_bin_and_old_gamma_beta_names(tmp_path):
    ours = BertModel(BertConfig(**TINY)).eval()
    state = {k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
             for k, v in to_hf_state_dict(ours).items()}
    (tmp_path / "old").mkdir()
    torch.save(state, tmp_path / "old" / "pytorch_model.bin")
    ours.config.save(tmp_path / "old" / "config.json")
    back, _ = load_model(tmp_path / "old", BertModel)
    b = batch()
    with torch.no_grad():
        torch.testing.assert_close(back.eval()(**b)["last_hidden_state"], ours(**b)["last_hidden_state"])


def test_unknown_layout_names_the_directory(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="config.json"):
        load_model(tmp_path / "empty")
    BertConfig(**TINY).save(tmp_path / "empty" / "config.json")
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_model(tmp_path / "empty")


def test_config_that_does_not_match_the_weights_names_file_and_key(tmp_path):
    save_model(BertModel(BertConfig(**TINY)), tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    cfg["hidden_size"], cfg["intermediate_size"] = 48, 96
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=r"model\.safetensors: 'embeddings\.LayerNorm\.bias' の形 \(32,\).*\(48,\)"):
        load_model(tmp_path / "m")


def test_missing_encoder_weight_names_the_key(tmp_path):
    save_model(BertModel(BertConfig(**TINY)), tmp_path / "m")
    state = load_file(tmp_path / "m" / "model.safetensors")
    del state["encoder.layer.1.output.dense.weight"]
    save_file(state, tmp_path / "m" / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"encoder\.layer\.1\.output\.dense\.weight"):
        load_model(tmp_path / "m")


def test_broken_config_json_names_the_line(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text('{\n "hidden_size": 32,\n oops\n}')
    with pytest.raises(ValueError, match=r"config\.json:3"):
        load_model(tmp_path / "m")


def test_a_missing_model_id_offline_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError, match="Hugging Face Hub"):
        load_model("nobody-here/no-such-bert")


def test_a_wrong_checkpoint_folder_says_which_one_to_give(tmp_path, monkeypatch):
    from solutions.checkpoints import resolve_checkpoint

    (tmp_path / "runs/ft/best").mkdir(parents=True)
    (tmp_path / "runs/ft/best/config.json").write_text("{}")
    with pytest.raises(CheckpointError, match=r"train の出力フォルダです。その中の .*best を指定してください"):
        load_model(tmp_path / "runs/ft")
    monkeypatch.chdir(tmp_path)
    # "runs/nothere" has the shape of a model id ("owner/name"), but runs/ is a folder here.
    with pytest.raises(CheckpointError, match="runs/nothere: チェックポイントのディレクトリが見つかりません"):
        resolve_checkpoint("runs/nothere")


def hf_tiny_config(**settings):
    return transformers.BertConfig(**{k: v for k, v in TINY.items()}, **settings)


def test_a_sharded_checkpoint_loads_as_one_file_would(tmp_path):
    """save_pretrained(max_shard_size=...) writes an index and several files."""
    theirs = transformers.BertForSequenceClassification(hf_tiny_config(num_labels=3)).eval()
    theirs.save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").exists()
    assert len(list((tmp_path / "sharded").glob("model-*.safetensors"))) > 1
    ours, missing = load_model(tmp_path / "sharded", BertForSequenceClassification)
    assert not missing
    b = batch()
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(**b)["logits"], theirs(**b).logits, atol=1e-5, rtol=0)
    next((tmp_path / "sharded").glob("model-*.safetensors")).unlink()
    with pytest.raises(CheckpointError, match=r"index\.json.*model-.*がありません"):
        load_model(tmp_path / "sharded", BertForSequenceClassification)


def test_an_mlm_decoder_of_its_own_is_refused(tmp_path):
    """tie_word_embeddings=false: our MLM head always scores with the token embeddings."""
    theirs = transformers.BertForMaskedLM(hf_tiny_config(tie_word_embeddings=False))
    with torch.no_grad():
        theirs.cls.predictions.decoder.weight.normal_(0, 0.5)
    theirs.save_pretrained(tmp_path / "untied")
    with pytest.raises(CheckpointError, match="cls.predictions.decoder.*tie_word_embeddings=false"):
        load_model(tmp_path / "untied", BertForMaskedLM)
    model, missing = load_model(tmp_path / "untied", BertModel)  # the encoder alone is fine
    assert not [k for k in missing if not k.startswith("pooler")]


def test_an_mlm_bias_stored_under_the_decoders_name(tmp_path):
    """transformers ties cls.predictions.decoder.bias to cls.predictions.bias."""
    theirs = transformers.BertForMaskedLM(hf_tiny_config()).eval()
    with torch.no_grad():
        theirs.cls.predictions.bias.normal_()
    state = theirs.state_dict()
    state["cls.predictions.decoder.bias"] = state.pop("cls.predictions.bias")
    (tmp_path / "ckpt").mkdir()
    theirs.config.save_pretrained(tmp_path / "ckpt")
    torch.save(state, tmp_path / "ckpt" / "pytorch_model.bin")
    ours, missing = load_model(tmp_path / "ckpt", BertForMaskedLM)
    assert "mlm_head.bias" not in missing
    b = batch()
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(**b)["logits"], theirs(**b).logits, atol=1e-5, rtol=0)


@pytest.mark.parametrize("settings,named", [({"is_decoder": True}, "is_decoder"),
                                            ({"is_decoder": True, "add_cross_attention": True}, "add_cross_attention"),
                                            ({"problem_type": "regression", "num_labels": 1}, "regression")])
def test_configs_our_model_would_ignore_are_refused(tmp_path, settings, named):
    """A decoder attends causally in transformers; a regression head is not a classifier."""
    transformers.BertForSequenceClassification(hf_tiny_config(**settings)).save_pretrained(tmp_path / "ckpt")
    with pytest.raises(ValueError, match=rf"config\.json.*{named}"):
        load_model(tmp_path / "ckpt", BertForSequenceClassification)


@pytest.mark.parametrize("config,message", [
    ([1, 2], r"JSON のオブジェクト \({...}\) ではありません \(list\)"),
    ({"num_attention_heads": 0}, r"num_attention_heads は 1 以上の整数です \(0\)"),
    ({"num_hidden_layers": 1.5}, r"num_hidden_layers は 1 以上の整数です \(1.5\)"),
    ({"hidden_size": "32"}, r"hidden_size は 1 以上の整数です \('32'\)"),
    ({"num_hidden_layers": -1}, r"num_hidden_layers は 1 以上の整数です \(-1\)"),
    ({"hidden_dropout_prob": "x"}, r"hidden_dropout_prob は 0 以上 1 以下の数です"),
])
def test_a_config_with_wrong_values_names_the_file_and_field(tmp_path, config, message):
    save_model(BertModel(BertConfig(**TINY)), tmp_path)
    good = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps(config if isinstance(config, list) else {**good, **config}))
    with pytest.raises(ValueError, match=r"config\.json: .*" + message):
        load_model(tmp_path, BertModel)


@pytest.mark.parametrize("name,damage", [("model.safetensors", lambda data: data[:1000]),
                                         ("model.safetensors", lambda data: b""),
                                         ("pytorch_model.bin", lambda data: b"junk\n")])
def test_a_damaged_weights_file_is_named(tmp_path, name, damage):
    save_model(BertModel(BertConfig(**TINY)), tmp_path)
    weights = tmp_path / "model.safetensors"
    data = weights.read_bytes()
    weights.unlink()
    (tmp_path / name).write_bytes(damage(data))
    with pytest.raises(CheckpointError, match=rf"{name}: 重みファイルが読めません \(壊れているか、途中で切れています"):
        load_model(tmp_path, BertModel)


@pytest.mark.parametrize("index,message", [
    ("[1]", r"JSON のオブジェクト"),
    (b"\xff\xfe", r"UTF-8 として読めません"),
    ('{"weight_map": {"a": 5}}', r"weight_map のファイル名が不正です \(5\)"),
    ('{"weight_map": {"a": "model.safetensors.index.json"}}', r"weight_map のファイル名が不正です"),
    ('{"weight_map": {"a": "../model.safetensors"}}', r"weight_map のファイル名が不正です"),
    ('{"metadata": {}}', r"weight_map \(重みの名前 → ファイル名\) がありません"),
])
def test_a_broken_shard_index_is_named(tmp_path, index, message):
    BertModel(BertConfig(**TINY)).config.save(tmp_path / "config.json")
    path = tmp_path / "model.safetensors.index.json"
    path.write_bytes(index if isinstance(index, bytes) else index.encode())
    with pytest.raises(ValueError, match=r"model\.safetensors\.index\.json: .*" + message):
        load_model(tmp_path, BertModel)


def test_config_json_not_utf8_and_a_classifier_dropout_out_of_range_are_named(tmp_path):
    save_model(BertModel(BertConfig(**TINY)), tmp_path)
    good = (tmp_path / "config.json").read_bytes()
    (tmp_path / "config.json").write_bytes(good[:10] + b"\xff" + good[10:])
    with pytest.raises(ValueError, match=r"config\.json: UTF-8 として読めません \(11 バイト目\)"):
        load_model(tmp_path, BertModel)
    (tmp_path / "config.json").write_text(json.dumps({**json.loads(good), "classifier_dropout": 1.5}))
    with pytest.raises(ValueError, match=r"config\.json: .*classifier_dropout は 0 以上 1 以下の数です \(1.5\)"):
        load_model(tmp_path, BertModel)
