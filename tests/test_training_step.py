"""A training step leaves the loss on the device: reading a number back into Python
(loss.item()) makes the CPU wait for the GPU, which then idles while the CPU pads
the next batch. The loops read the loss only when they log it (every 10 steps)."""
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import solutions.training as T
from solutions.config import BertConfig
from solutions.finetune import FinetuneSettings, train_step
from solutions.models import BertForMaskedLM, BertForSequenceClassification
from solutions.pretrain import mlm_step


class ReadsBack(TorchDispatchMode):
    """Records every value read from a tensor into Python (aten._local_scalar_dense:
    .item(), float(), bool(), formatting), with its dtype."""

    def __init__(self):
        super().__init__()
        self.dtypes = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            self.dtypes.append(args[0].dtype)
        return func(*args, **(kwargs or {}))


def config(**extra):
    return BertConfig(vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                      intermediate_size=64, **extra)


def optimizer_and_schedule(model):
    optimizer = T.make_optimizer(model, 1e-3, 0.01, torch.device("cpu"))
    return optimizer, T.make_scheduler(optimizer, 2, 10)


def test_a_finetuning_step_reads_no_number_back():
    torch.manual_seed(0)
    model = BertForSequenceClassification(config(labels=["a", "b", "c"]))
    optimizer, scheduler = optimizer_and_schedule(model)
    encoded = {"input_ids": [[2, 7, 8, 9, 3], [2, 10, 3], [2, 11, 12, 3]], "token_type_ids": [[0] * 5, [0] * 3, [0] * 4]}
    y = torch.tensor([0, 2, 1])
    cpu = torch.device("cpu")
    with ReadsBack() as reads:
        loss = train_step(model, optimizer, scheduler, [0, 1, 2], encoded, y, FinetuneSettings(), cpu,
                          T.grad_scaler(cpu))
    # Only the CPU-side check of the batch for [PAD] (a bool read of a CPU tensor) is allowed.
    assert reads.dtypes == [torch.bool]
    assert torch.is_tensor(loss) and loss.ndim == 0 and not loss.requires_grad
    with ReadsBack() as reads:
        value = loss.item()
    assert reads.dtypes == [torch.float32] and value > 0  # the recorder does see a loss read


def test_an_mlm_step_reads_no_number_back():
    torch.manual_seed(0)
    model = BertForMaskedLM(config())
    optimizer, scheduler = optimizer_and_schedule(model)
    ids = torch.randint(5, 60, (4, 16))
    labels = torch.full_like(ids, -100)
    labels[:, ::5] = ids[:, ::5]
    cpu = torch.device("cpu")
    with ReadsBack() as reads:
        loss = mlm_step(model, optimizer, scheduler, ids, labels, 1.0, cpu, T.grad_scaler(cpu))
    assert reads.dtypes == [] and loss.ndim == 0 and not loss.requires_grad


@pytest.mark.skipif(not torch.cuda.is_available(), reason="GPU のあるマシンだけで確かめます")
def test_on_a_gpu_a_step_never_synchronises():
    device = torch.device("cuda")
    torch.manual_seed(0)
    model = BertForSequenceClassification(config(labels=["a", "b"])).to(device)
    optimizer = T.make_optimizer(model, 1e-3, 0.01, device)
    scheduler = T.make_scheduler(optimizer, 2, 10)
    encoded = {"input_ids": [[2, 7, 8, 3], [2, 10, 11, 3]], "token_type_ids": [[0] * 4, [0] * 4]}
    scaler = T.grad_scaler(device)
    if scaler.is_enabled():
        pytest.skip("fp16 (compute capability < 8): the scaler reads back whether a gradient overflowed")
    train_step(model, optimizer, scheduler, [0, 1], encoded, torch.tensor([0, 1]), FinetuneSettings(), device,
               scaler)  # the first step: allocations, kernel choices
    torch.cuda.set_sync_debug_mode("error")
    try:
        train_step(model, optimizer, scheduler, [1, 0], encoded, torch.tensor([1, 0]), FinetuneSettings(), device,
                   scaler)
    finally:
        torch.cuda.set_sync_debug_mode("default")
