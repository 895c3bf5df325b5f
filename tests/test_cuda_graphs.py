"""train --cuda-graphs: the whole model compiled, batches padded to a multiple of 16.
On a CPU no graph is recorded, but the rest of the path runs: the same training as
without it. (The graphs themselves are checked on a GPU by bench/gpu.py's
cudagraphs_same_training.)"""
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from solutions.batching import pad_batch
from solutions.checkpoints import save_model
from solutions.config import BertConfig
from solutions.data import make_demo_corpus, split_train_dev, write_jsonl
from solutions.finetune import FinetuneSettings, check_cuda_graphs, finetune
from solutions.models import BertForMaskedLM
from solutions.tokenization import Tokenizer, train_vocab
from solutions.training import TrainingError, read_log


@given(lengths=st.lists(st.integers(1, 70), min_size=1, max_size=5), multiple=st.sampled_from([1, 8, 16]),
       limit=st.one_of(st.none(), st.integers(1, 80)))
@settings(max_examples=60, deadline=None)
def test_padded_length_is_a_multiple_up_to_the_limit(lengths, multiple, limit):
    batch = pad_batch([[7] * n for n in lengths], multiple=multiple, limit=limit)
    longest = max(lengths)
    if limit is not None and limit <= longest:  # the limit never cuts a sequence
        expected = longest
    else:  # the first width from the longest on that is a multiple, or the limit
        expected = next(w for w in range(longest, longest + multiple + 1) if w % multiple == 0 or w == limit)
    assert batch["input_ids"].shape[1] == expected
    assert batch["attention_mask"].sum(1).tolist() == lengths  # the extra positions are [PAD]


@pytest.fixture(scope="module")
def data_and_checkpoint(tmp_path_factory):
    """Demo pages and a tiny MLM BERT without dropout (so compiled and plain runs can be compared)."""
    path = tmp_path_factory.mktemp("graphs")
    records = make_demo_corpus(n_pages=160, seed=3)
    tokenizer = Tokenizer(train_vocab([r.text for r in records], 600))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0)
    save_model(BertForMaskedLM(config), path / "ckpt", tokenizer)
    train, dev = split_train_dev(records, dev_fraction=0.25, seed=0)
    return train, dev, path / "ckpt"


def weights(out_dir):
    from safetensors.torch import load_file

    return load_file(out_dir / "best" / "model.safetensors")


def losses(out_dir):
    log = read_log(out_dir / "metrics.jsonl")
    return [e["loss"] for e in log if "loss" in e], [e["dev_micro_f1"] for e in log if "dev_micro_f1" in e]


def test_training_with_cuda_graphs_takes_the_same_steps(tmp_path, data_and_checkpoint, capsys):
    train, dev, checkpoint = data_and_checkpoint
    # pages of 41-200 tokens cut at 120: batches of many lengths, padded to a multiple of 16 or to 120
    common = dict(epochs=2, batch_size=8, lr=3e-3, max_length=120, multi_label=False, device="cpu", keep_state=False)
    finetune(train, dev, checkpoint, tmp_path / "plain", FinetuneSettings(**common))
    finetune(train, dev, checkpoint, tmp_path / "graphs", FinetuneSettings(**common, cuda_graphs=True))
    assert "CUDA グラフは GPU でだけ使われます" in capsys.readouterr().err
    (plain, plain_f1), (graphs, graphs_f1) = losses(tmp_path / "plain"), losses(tmp_path / "graphs")
    assert len(plain) == len(graphs) >= 3
    assert graphs == pytest.approx(plain, abs=1e-4)  # padded to 16 and compiled: the same losses
    assert graphs_f1 == pytest.approx(plain_f1, abs=1e-6)
    plain_weights, graphs_weights = weights(tmp_path / "plain"), weights(tmp_path / "graphs")
    for name, value in plain_weights.items():  # [PAD] attended to would move them by about 1e-2
        torch.testing.assert_close(graphs_weights[name], value, atol=1e-4, rtol=0, msg=name)


def test_batches_for_cuda_graphs_are_padded_to_a_multiple_of_16(monkeypatch, data_and_checkpoint, tmp_path):
    """What the model is called with: lengths in multiples of 16, never past max_length."""
    import solutions.finetune as F

    widths = []  # (longest sequence, padded width) of each training batch
    real = F.pad_batch

    def spy(sequences, *args, **kwargs):
        batch = real(sequences, *args, **kwargs)
        widths.append((max(map(len, sequences)), batch["input_ids"].shape[1]))
        return batch

    monkeypatch.setattr(F, "pad_batch", spy)
    train, dev, checkpoint = data_and_checkpoint
    settings = FinetuneSettings(epochs=1, batch_size=16, lr=1e-3, max_length=120, device="cpu", keep_state=False,
                                cuda_graphs=True, stop_after_steps=6)
    F.finetune(train, dev, checkpoint, tmp_path / "ft", settings)
    assert len(widths) == 6 and all(w % 16 == 0 or w == 120 for _, w in widths)
    assert all(longest <= w <= 120 for longest, w in widths)
    assert any(longest < w < 120 for longest, w in widths)  # some batch was padded up to a multiple


@pytest.mark.parametrize("unpad, world_size, message", [
    (True, 1, "--cuda-graphs と --unpad は一緒に使えません"),
    (False, 2, "--cuda-graphs は GPU 1 枚の学習でだけ使えます"),
])
def test_cuda_graphs_refuses_what_it_cannot_replay(unpad, world_size, message):
    with pytest.raises(TrainingError, match=message):
        check_cuda_graphs(FinetuneSettings(cuda_graphs=True, unpad=unpad), SimpleNamespace(world_size=world_size))
    check_cuda_graphs(FinetuneSettings(cuda_graphs=False, unpad=unpad), SimpleNamespace(world_size=world_size))


def test_the_train_command_passes_cuda_graphs_on(tmp_path, data_and_checkpoint):
    """The flag reaches finetune: with --unpad the command stops with its message (exit 1)."""
    train, dev, checkpoint = data_and_checkpoint
    write_jsonl(tmp_path / "train.jsonl", train)
    write_jsonl(tmp_path / "dev.jsonl", dev)
    result = subprocess.run([sys.executable, "-m", "autograder.cli", "train", "--train", tmp_path / "train.jsonl",
                             "--dev", tmp_path / "dev.jsonl", "--checkpoint", checkpoint, "--out", tmp_path / "out",
                             "--device", "cpu", "--cuda-graphs", "--unpad"], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 1, result.stderr[-2000:]
    assert "--cuda-graphs と --unpad は一緒に使えません" in result.stderr


def test_a_resumed_run_is_checked_with_the_settings_it_goes_on_with(tmp_path, data_and_checkpoint, capsys):
    """--resume keeps the saved settings: the refusal looks at those, not at the flags given."""
    train, dev, checkpoint = data_and_checkpoint
    common = dict(epochs=1, batch_size=16, lr=1e-3, max_length=120, device="cpu")
    finetune(train, dev, checkpoint, tmp_path / "ft", FinetuneSettings(**common, stop_after_steps=2))
    # --cuda-graphs --unpad would be refused, but a resumed run uses neither (saved: both off)
    finetune(train, dev, checkpoint, tmp_path / "ft",
             FinetuneSettings(**common, cuda_graphs=True, unpad=True, stop_after_steps=4), resume=True)
    err = capsys.readouterr().err
    assert "cuda_graphs (指定 True、保存 False)" in err and "unpad (指定 True、保存 False)" in err


def test_a_state_saved_before_cuda_graphs_existed_says_the_flag_is_not_used(tmp_path, data_and_checkpoint, capsys):
    train, dev, checkpoint = data_and_checkpoint
    common = dict(epochs=1, batch_size=16, lr=1e-3, max_length=120, device="cpu")
    finetune(train, dev, checkpoint, tmp_path / "ft", FinetuneSettings(**common, stop_after_steps=2))
    state_path = tmp_path / "ft" / "last" / "state.pt"
    state = torch.load(state_path, weights_only=False)
    del state["settings"]["cuda_graphs"]  # as an older version saved it
    torch.save(state, state_path)
    finetune(train, dev, checkpoint, tmp_path / "ft",
             FinetuneSettings(**common, cuda_graphs=True, stop_after_steps=4), resume=True)
    assert "cuda_graphs (指定 True、保存 False)" in capsys.readouterr().err
