"""Mixed precision: bf16 where the GPU has it, fp16 with loss scaling where it does not
(Colab's T4, V100), fp32 on the CPU. The fp16 path is exercised on the CPU, whose
autocast computes in fp16 too, and checked against a plain fp32 step."""
import copy
import warnings

import pytest
import torch

import solutions.training as T
from solutions.checkpoints import save_model
from solutions.config import BertConfig
from solutions.data import make_demo_corpus, split_train_dev
from solutions.finetune import FinetuneSettings, finetune, train_step
from solutions.models import BertForMaskedLM, BertForSequenceClassification
from solutions.pretrain import PretrainSettings, pretrain
from solutions.tokenization import Tokenizer, train_vocab
from solutions.training import amp_dtype, grad_scaler

CPU = torch.device("cpu")


@pytest.fixture
def fp16_on_cpu(monkeypatch):
    """Make the CPU behave like a T4: autocast in fp16, loss scaling on."""
    monkeypatch.setattr(T, "amp_dtype", lambda device: torch.float16)


def test_precision_follows_the_hardware(monkeypatch):
    assert amp_dtype(CPU) is None and not grad_scaler(CPU).is_enabled()
    cuda = torch.device("cuda")
    for capability, expected in [((9, 0), torch.bfloat16), ((8, 0), torch.bfloat16), ((7, 5), torch.float16),
                                 ((7, 0), torch.float16)]:  # H100, A100, T4, V100
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
        assert amp_dtype(cuda) == expected


def test_the_scaler_is_on_for_fp16_only(monkeypatch):
    for dtype, on in [(torch.float16, True), (torch.bfloat16, False), (None, False)]:
        monkeypatch.setattr(T, "amp_dtype", lambda device: dtype)
        assert grad_scaler(CPU).is_enabled() is on


def tiny_classifier():
    torch.manual_seed(0)
    config = BertConfig(vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, labels=["a", "b", "c"], hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0)
    return BertForSequenceClassification(config)


def tiny_batch():
    g = torch.Generator().manual_seed(3)
    lengths = [5, 9, 7, 12]
    encoded = {"input_ids": [[2] + torch.randint(5, 60, (n - 2,), generator=g).tolist() + [3] for n in lengths],
               "token_type_ids": [[0] * n for n in lengths]}
    return encoded, torch.tensor([0, 2, 1, 2])


def one_step(model, scaler, clip_norm=1.0, device=CPU):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    encoded, y = tiny_batch()
    return train_step(model, optimizer, scheduler, [0, 1, 2, 3], encoded, y,
                      FinetuneSettings(clip_norm=clip_norm), device, scaler)


@pytest.mark.parametrize("clip_norm", [1e-3, 100.0])  # clipped hard, and not clipped
def test_an_fp16_scaled_step_updates_like_an_fp32_step(fp16_on_cpu, monkeypatch, clip_norm):
    fp16_model, fp32_model = tiny_classifier(), tiny_classifier()
    scaler = grad_scaler(CPU)
    assert scaler.is_enabled() and scaler.get_scale() == 65536.0
    loss16 = one_step(fp16_model, scaler, clip_norm)
    monkeypatch.setattr(T, "amp_dtype", lambda device: None)
    loss32 = one_step(fp32_model, grad_scaler(CPU), clip_norm)
    assert abs(loss16 - loss32) < 5e-3
    start = tiny_classifier().state_dict()
    for name, p16 in fp16_model.state_dict().items():
        moved16, moved32 = p16 - start[name], fp32_model.state_dict()[name] - start[name]
        # the same update, up to fp16's rounding (the scale was undone before clipping and stepping)
        torch.testing.assert_close(moved16, moved32, atol=2e-3 * max(1.0, moved32.abs().max().item()), rtol=0.05,
                                   msg=name)
    assert any((p - start[n]).abs().max() > 0 for n, p in fp16_model.state_dict().items())


def test_an_overflowed_fp16_step_is_skipped_and_the_scale_lowered(fp16_on_cpu):
    model = tiny_classifier()
    before = copy.deepcopy(model.state_dict())
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 120)  # the scaled fp16 gradients overflow
    one_step(model, scaler)
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), name
    assert scaler.get_scale() == 2.0 ** 119
    for p in model.parameters():
        assert p.grad is None


def test_the_expected_skipped_first_steps_raise_no_scheduler_warning(fp16_on_cpu):
    """PyTorch warns when a schedule steps before its optimizer has; under fp16 that is
    what a skipped first step does, and grad_scaler silences that one warning."""
    def warnings_of_an_overflowed_first_step(install_filter: bool):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if install_filter:
                grad_scaler(CPU)
            one_step(tiny_classifier(), torch.amp.GradScaler("cpu", init_scale=2.0 ** 120))
        return [str(w.message) for w in caught if "lr_scheduler" in str(w.message)]

    assert warnings_of_an_overflowed_first_step(install_filter=False)  # PyTorch does warn
    assert not warnings_of_an_overflowed_first_step(install_filter=True)


@pytest.mark.slow
def test_fp16_finetuning_learns_and_resumes_with_its_scale(tmp_path, fp16_on_cpu, monkeypatch):
    """A run cut short and resumed under fp16 ends with the same weights as one run
    through: the scaler's state (its scale and growth count) is saved and restored.
    And the fp16 run's losses follow the fp32 run's."""
    records = make_demo_corpus(n_pages=400, seed=1)
    train, dev = split_train_dev(records[:240], dev_fraction=0.25, seed=0)
    checkpoint = tmp_path / "ckpt"
    tokenizer = Tokenizer(train_vocab([r.text for r in records], 800))
    torch.manual_seed(0)
    save_model(BertForMaskedLM(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                                          num_attention_heads=2, intermediate_size=64,
                                          max_position_embeddings=128)), checkpoint, tokenizer)
    # A scale that grows every 3 steps overflows again and again: skipped steps, a changing scale.
    monkeypatch.setattr(T, "grad_scaler", lambda device: torch.amp.GradScaler("cpu", growth_interval=3))
    settings = dict(epochs=4, batch_size=16, lr=3e-3, max_length=64, device="cpu", save_every=4)
    full = finetune(train, dev, checkpoint, tmp_path / "full", FinetuneSettings(**settings))
    finetune(train, dev, checkpoint, tmp_path / "cut", FinetuneSettings(**settings, stop_after_steps=7))
    assert torch.load(tmp_path / "cut/last/state.pt")["scaler"]["scale"] != 65536.0  # a state worth keeping
    finetune(train, dev, checkpoint, tmp_path / "cut", FinetuneSettings(**settings), resume=True)
    a, b = torch.load(tmp_path / "full/last/state.pt"), torch.load(tmp_path / "cut/last/state.pt")
    assert a["scaler"] == b["scaler"]
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key], atol=0, rtol=0, msg=key)
    # and it learns as the same run in fp32 does
    monkeypatch.setattr(T, "amp_dtype", lambda device: None)
    fp32 = finetune(train, dev, checkpoint, tmp_path / "fp32", FinetuneSettings(**settings))
    losses16, losses32 = ([e["loss"] for e in T.read_log(tmp_path / run / "metrics.jsonl") if "loss" in e]
                          for run in ("full", "fp32"))
    assert len(losses16) == len(losses32) > 4 and losses16[-1] < 0.7 * losses16[0]
    assert abs(losses16[-1] - losses32[-1]) < 0.05 * losses32[-1]
    assert abs(full["best"]["dev_micro_f1"] - fp32["best"]["dev_micro_f1"]) < 5


def test_fp16_pretraining_follows_the_fp32_run(tmp_path, monkeypatch):
    texts = [r.text for r in make_demo_corpus(120, seed=0)]
    settings = PretrainSettings(size="tiny", vocab_size=400, max_length=32, batch_size=16, max_steps=150,
                                lr=2e-3, device="cpu")
    curves = {}
    for name, dtype in [("fp32", None), ("fp16", torch.float16)]:
        monkeypatch.setattr(T, "amp_dtype", lambda device: dtype)
        assert pretrain(texts, tmp_path / name, settings)["steps"] == 150
        curves[name] = [e["loss"] for e in T.read_log(tmp_path / name / "metrics.jsonl")]
    for losses in curves.values():
        assert sum(losses[-3:]) / 3 < losses[0] - 1.0
    assert abs(sum(curves["fp16"][-3:]) - sum(curves["fp32"][-3:])) / 3 < 0.15


@pytest.mark.skipif(not torch.cuda.is_available(), reason="GPU のあるマシンだけで確かめます")
def test_on_this_gpu_the_precision_matches_its_compute_capability():
    device = torch.device("cuda")
    major, _ = torch.cuda.get_device_capability(device)
    assert amp_dtype(device) == (torch.bfloat16 if major >= 8 else torch.float16)
    model = tiny_classifier().to(device)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    loss = one_step(model, grad_scaler(device), device=device)
    assert loss == loss and loss < 10  # finite
    assert any(not torch.equal(p, before[n]) for n, p in model.named_parameters())
