"""Pieces every training loop here shares: device, optimiser, schedule,
mixed precision, resumable state, the metrics log and the learning curve."""
from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import sys
import threading
import warnings
from pathlib import Path

import torch

from .data import describe_os_error


class TrainingError(RuntimeError):
    """A training run that cannot go on; the message says why, in Japanese."""


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise TrainingError("--device cuda が指定されましたが GPU が見つかりません")
    return torch.device(name)


def amp_dtype(device: torch.device) -> torch.dtype | None:
    """The type mixed precision computes in; None: plain fp32 (the CPU).
    bf16 on GPUs built for it (compute capability 8.0 and up: A100, H100, RTX 30xx…);
    fp16 on older ones (Colab's T4, V100), which only emulate bf16, slower than fp32."""
    if device.type != "cuda":
        return None
    # (torch.cuda.is_bf16_supported() says True on a T4 too: it counts emulation)
    return torch.bfloat16 if torch.cuda.get_device_capability(device) >= (8, 0) else torch.float16


def autocast(device: torch.device):
    """Mixed precision: matrix products in bf16/fp16 (amp_dtype); autocast keeps
    softmax, LayerNorm and the losses in fp32."""
    dtype = amp_dtype(device)
    return torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()


def grad_scaler(device: torch.device) -> torch.amp.GradScaler:
    """Loss scaling, needed by fp16 only: its smallest numbers are about 6e-8, and
    smaller gradients would become 0. The scaler multiplies the loss (so every
    gradient) by a large factor, divides the gradients back before the update,
    and skips a step whose gradients overflowed. With bf16 or fp32 it does nothing."""
    enabled = amp_dtype(device) == torch.float16
    if enabled:  # the first steps overflow while the scale settles; PyTorch would warn that
        # the schedule stepped without the optimizer. Expected here: silence that warning only.
        warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)` before")
    return torch.amp.GradScaler(device.type, enabled=enabled)


def batch_to_device(batch: dict, device: torch.device) -> dict:
    """Move a batch's tensors to the device. A batch without [PAD] loses its
    attention mask (checked here, on the CPU): the model then runs the fused
    attention kernel (FlashAttention on a GPU), which is fastest without a mask."""
    mask = batch.get("attention_mask")
    if mask is not None and bool(mask.all()):
        batch = {k: v for k, v in batch.items() if k != "attention_mask"}
    return {k: to_device(v, device) for k, v in batch.items()}


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Copy to the device without waiting for the GPU. From ordinary (pageable)
    memory CUDA first waits until all earlier GPU work is done; from page-locked
    ("pinned") memory the copy just joins the queue, and the CPU goes on."""
    if device.type == "cuda" and tensor.device.type == "cpu":
        tensor = tensor.pin_memory()
    return tensor.to(device, non_blocking=True)


def compile_layers(model, dynamic: bool | None = None, backend: str = "inductor"):
    """torch.compile each encoder layer rather than the whole model ("regional
    compilation"): every layer runs the same code, so one compiled graph serves
    all of them and compiling takes seconds, not a minute. dynamic=True: one
    graph for all sequence lengths (length-bucketed batches). The fast classifier
    (solutions.fast) runs its layers through one function, which is compiled instead."""
    if hasattr(model, "run_layer"):
        model.run_layer = torch.compile(model.run_layer, dynamic=dynamic, backend=backend)
        return model
    for layer in model.bert.layers:
        layer.compile(dynamic=dynamic, backend=backend)
    return model


GRAPH_LENGTH_MULTIPLE = 16  # with CUDA graphs, batches are padded to a multiple of this many tokens


def compile_model(model, cuda_graphs: bool = False, dynamic: bool | None = None):
    """torch.compile the whole model. cuda_graphs: the step's kernels are recorded once
    per input shape as a CUDA graph and then replayed with one call (mode
    "reduce-overhead"). On an H200 the CPU cannot launch BERT-base's few hundred kernels
    a step as fast as the GPU runs them (compiled, the GPU still waited about 40% of each
    step); replayed, the GPU no longer waits. Pad lengths to a multiple (pad_batch) to keep the graphs few.
    A graph's outputs are overwritten by the next step: read them (loss.item()) before it."""
    return torch.compile(model, dynamic=dynamic, mode="reduce-overhead" if cuda_graphs else None)


def model_for_steps(model, compile: bool = False, cuda_graphs: bool = False, dynamic: bool | None = None):
    """The model as the training steps call it: as it is; with its layers compiled
    (compile); or compiled whole and replayed as CUDA graphs (cuda_graphs, a GPU's)."""
    if cuda_graphs:
        if next(model.parameters()).device.type != "cuda":
            print("注意: CUDA グラフは GPU でだけ使われます。ここではモデル全体をコンパイルするだけです",
                  file=sys.stderr)
        return compile_model(model, cuda_graphs=True, dynamic=dynamic)
    return compile_layers(model, dynamic=dynamic) if compile else model


def make_optimizer(model, lr: float, weight_decay: float, device: torch.device):
    """AdamW; no weight decay on biases and LayerNorm gains (1-D parameters).
    Fused: one kernel updates every parameter (5x faster on a CPU too), and it never
    reads a number back from the device."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    groups = [{"params": decay, "weight_decay": weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, fused=device.type in ("cuda", "cpu"))


def warmup_linear_decay(step: int, warmup_steps: int, total_steps: int) -> float:
    """Learning-rate factor: 0 → 1 over the warm-up, then linearly down to 0."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))


def make_scheduler(optimizer, warmup_steps: int, total_steps: int):
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_linear_decay(step, warmup_steps, total_steps))


def warmup_steps_for(total_steps: int, ratio: float) -> int:
    return max(1, math.ceil(total_steps * ratio))


@contextlib.contextmanager
def stop_between_steps(enabled: bool = True):
    """Ctrl-C while training: the first press asks the loop to stop after the step
    it is in, so the state it saves is whole and --resume goes on exactly; a
    second press stops at once. Yields an Event, set by the first press."""
    pressed = threading.Event()
    previous = signal.getsignal(signal.SIGINT)
    if not enabled or previous in (signal.SIG_IGN, None) or threading.current_thread() is not threading.main_thread():
        yield pressed
        return

    def on_ctrl_c(signum, frame):
        pressed.set()
        signal.signal(signal.SIGINT, previous)
        # Straight to the terminal: print() here could land inside a write the loop is making.
        os.write(2, "\n中断します: このステップが終わったら保存して止めます (すぐに止めるには、もう一度 Ctrl-C)\n"
                 .encode())

    signal.signal(signal.SIGINT, on_ctrl_c)
    try:
        yield pressed
    finally:
        signal.signal(signal.SIGINT, previous)


def save_state(path: Path, **state) -> None:
    """Write a resumable training state atomically: a crash leaves the old file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise TrainingError(
            f"{path}: 学習状態を保存できません ({describe_os_error(e)})。ディスクの空きを確認してから "
            "--resume で再開してください (直前に保存した状態は残っています)") from None


def load_state(path: Path) -> dict:
    if not path.exists():
        raise TrainingError(f"{path}: 再開する学習状態がありません (--resume なしで始めてください)")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 (a cut or overwritten file fails in many ways)
        raise TrainingError(f"{path}: 学習状態が読めません (壊れているか、途中で切れています: {type(e).__name__})。"
                            "--resume なしで始め直してください") from None


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def append_log(path: Path, entry: dict) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(entry, ensure_ascii=False) + "\n")


def read_log(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def plot_learning_curve(log: list[dict], path: Path, title: str = "学習曲線",
                        baselines: dict[str, float] | None = None) -> None:
    """Training loss by step and, where logged, the held-out (dev) loss and
    dev micro-F1 by epoch; `baselines` ({label: loss}) as dotted lines.

    Drawn on a standalone Figure: no pyplot, so a notebook's backend is left alone."""
    from matplotlib.figure import Figure
    import matplotlib_fontja  # noqa: F401  (Japanese labels)

    steps = [e for e in log if "loss" in e]
    heldout = [e for e in log if "dev_loss" in e]
    evals = [e for e in log if "dev_micro_f1" in e]
    fig = Figure(figsize=(7, 4))
    ax = fig.add_subplot()
    ax.plot([e["step"] for e in steps], [e["loss"] for e in steps], color="tab:blue", label="訓練損失")
    if heldout:
        ax.plot([e["step"] for e in heldout], [e["dev_loss"] for e in heldout], "s-",
                color="tab:orange", label="dev 損失")
    for label, value in (baselines or {}).items():
        ax.axhline(value, color="gray", linestyle=":", label=label)
    ax.set_xlabel("ステップ")
    ax.set_ylabel("損失")
    handles = ax.get_lines()
    if evals:
        ax2 = ax.twinx()
        ax2.plot([e["step"] for e in evals], [e["dev_micro_f1"] for e in evals], "o-",
                 color="tab:red", label="dev micro-F1")
        ax2.set_ylabel("dev micro-F1")
        handles = handles + ax2.get_lines()
    if len(handles) > 1:
        ax.legend(handles, [h.get_label() for h in handles], loc="center right")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


class Distributed:
    """torchrun support: rank, world size, and the process group when there is one."""

    def __init__(self, device: torch.device):
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.device = device
        if self.world_size > 1:
            local_rank = int(os.environ.get("LOCAL_RANK", "0"))
            if device.type == "cuda":
                self.device = torch.device("cuda", local_rank)
                torch.cuda.set_device(self.device)
            backend = "nccl" if device.type == "cuda" else "gloo"
            torch.distributed.init_process_group(backend)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def wrap(self, model):
        if self.world_size == 1:
            return model
        ids = [self.device.index] if self.device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def shard(self, batches: list) -> list:
        """Each process takes every world_size-th batch (the same count on each)."""
        usable = len(batches) - len(batches) % self.world_size if self.world_size > 1 else len(batches)
        return batches[self.rank:usable:self.world_size]

    def barrier(self):
        if self.world_size > 1:
            torch.distributed.barrier()

    def close(self):
        if self.world_size > 1:
            torch.distributed.destroy_process_group()
