"""Fine-tuning a BERT classifier from a checkpoint, with resume after an interruption."""
from __future__ import annotations

import json
import sys
from collections import Counter
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from . import training as T
from .batching import length_bucketed_batches, pad_batch, sorted_batches
from .checkpoints import check_vocab, load_model, resolve_checkpoint, save_model
from .data import write_json_lines
from .encoding import WORKERS, encode_records
from .fast import FastBertForSequenceClassification
from .metrics import micro_f1
from .models import decide_labels, label_probabilities
from .tokenization import Tokenizer


@dataclass
class FinetuneSettings:
    epochs: int = 3
    batch_size: int = 32
    lr: float = 5e-5
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_length: int = 256
    clip_norm: float = 1.0
    seed: int = 0
    device: str = "auto"
    save_every: int = 200          # steps between resumable states
    stop_after_steps: int | None = None  # stop early (a time-sliced session); resume later
    multi_label: bool | None = None      # None: decided from the training data
    compile: bool = False
    cuda_graphs: bool = False      # compile the whole model and replay each step as a CUDA graph (one GPU)
    keep_state: bool = True        # False: no resumable state on disk (quick sweeps)
    windows: int = 1               # >1: long pages in up to this many chunks, probabilities averaged
    unpad: bool = False            # take [PAD] out of the computation (packed batches; for a GPU)


def targets(records, labels: list[str], multi_label: bool) -> torch.Tensor:
    """Class indices (single-label) or a multi-hot matrix (multi-label)."""
    index = {name: i for i, name in enumerate(labels)}
    if not multi_label:
        return torch.tensor([index[r.labels[0]] for r in records])
    multi_hot = torch.zeros(len(records), len(labels))
    for row, r in enumerate(records):
        for name in r.labels:
            multi_hot[row, index[name]] = 1
    return multi_hot


def warn_unseen_labels(records, labels, source: str) -> None:
    """Dev labels that training never saw: the model cannot predict them."""
    known = set(labels)
    unseen = Counter(name for r in records for name in r.labels if name not in known)
    if unseen:
        first = next(r.page_id for r in records if not known.issuperset(r.labels))
        names = ", ".join(list(unseen)[:10]) + (" …" if len(unseen) > 10 else "")
        print(f"警告: {source}: {len(unseen)} 種類のラベル ({names}) は訓練データにありません"
              f" (dev で {sum(unseen.values())} 個、最初はページ {first}。評価では取りこぼしとして数えます)",
              file=sys.stderr)


def warn_ignored_settings(given: FinetuneSettings, kept: FinetuneSettings) -> None:
    """--resume goes on with the saved settings: say which of the given ones it does not use."""
    saved = asdict(kept)  # a setting newer than the saved state has its default there
    differ = [f"{key} (指定 {value}、保存 {saved[key]})" for key, value in asdict(given).items()
              if saved[key] != value]
    if differ:
        print(f"警告: --resume は保存した設定で続けます。次の指定は使いません: {', '.join(differ)}", file=sys.stderr)


@torch.no_grad()
def predict_label_sets(model, encoded, batch_size: int, device, multi_label: bool,
                       threshold: float = 0.5, progress: bool = False, on_batch=None):
    """Probabilities (one row per record) and chosen label indices for each record.
    A record read in several windows gets the mean of their probabilities."""
    probs = record_probabilities(window_probabilities(model, encoded, batch_size, device, multi_label, progress,
                                                      on_batch),
                                 encoded["record"])
    chosen = decide_labels(probs, multi_label, threshold)
    return list(probs), [row.nonzero().flatten().tolist() for row in chosen]


@torch.no_grad()
def window_probabilities(model, encoded, batch_size: int, device, multi_label: bool, progress=False,
                         on_batch=None):
    """Label probabilities of every example (window), as one CPU tensor.

    They stay on the device until the last batch: copying each batch back would
    make the CPU wait for the GPU, and the GPU then waits while the CPU pads the
    next batch. on_batch(n), if given, is called after each batch of n examples."""
    model.eval()
    lengths = [len(x) for x in encoded["input_ids"]]
    parts, order = [], []
    for batch_idx in tqdm(sorted_batches(lengths, batch_size), desc="予測",
                          **({} if progress else {"disable": True})):
        batch = pad_batch([encoded["input_ids"][i] for i in batch_idx], 0,
                          [encoded["token_type_ids"][i] for i in batch_idx])
        with T.autocast(device):
            logits = model(**T.batch_to_device(batch, device))["logits"]
        parts.append(label_probabilities(logits.float(), multi_label))
        order += batch_idx
        if on_batch:
            on_batch(len(batch_idx))
    out = torch.zeros(len(lengths), len(model.config.labels))
    if parts:
        out[order] = torch.cat(parts).cpu()  # one copy, back in input order
    return out


def record_probabilities(window_probs: torch.Tensor, record: list[int]) -> torch.Tensor:
    """The mean of each record's window probabilities (records are numbered 0, 1, …)."""
    n_records = record[-1] + 1 if record else 0
    index = torch.tensor(record, dtype=torch.long)
    sums = torch.zeros(n_records, window_probs.shape[1]).index_add_(0, index, window_probs)
    counts = torch.bincount(index, minlength=n_records).clamp(min=1)
    return sums / counts[:, None]


def scored_labels(labels: list[str], probs, chosen) -> list[tuple[str, float]]:
    """[(label, probability)] of one page's chosen label indices, probabilities to 4 places."""
    return [(labels[i], round(float(probs[i]), 4)) for i in chosen]


def answer_row(page_id: str, scored) -> dict:
    """One page's answer in the simple form: {"page_id", "labels", "probs"}."""
    return {"page_id": page_id, "labels": [name for name, _ in scored], "probs": [p for _, p in scored]}


def evaluate(model, encoded, records, labels, settings, device) -> tuple[float, list[dict]]:
    """Dev micro-F1, and each page's predicted labels with their probabilities
    (the rows `predict --format simple` writes), for looking at the errors."""
    probs, chosen = predict_label_sets(model, encoded, settings.batch_size * 2, device,
                                       model.config.multi_label)
    rows = [answer_row(r.page_id, scored_labels(labels, p, c)) for r, p, c in zip(records, probs, chosen)]
    f1 = micro_f1([set(r.labels) for r in records], [set(row["labels"]) for row in rows])["micro_f1"]
    return f1, rows


@dataclass
class Run:
    """One fine-tuning run: what its steps update, and what is saved to resume it."""
    model: FastBertForSequenceClassification
    trained: torch.nn.Module  # the model as the steps call it (compiled, or spread over GPUs)
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    settings: FinetuneSettings
    device: torch.device
    log_path: Path            # metrics.jsonl: the loss every 10 steps, dev micro-F1 every epoch
    state_path: Path          # last/state.pt: what --resume reads
    is_main: bool = True      # the process that logs, evaluates and saves (torchrun: rank 0)
    step: int = 0
    best: dict = field(default_factory=lambda: {"dev_micro_f1": -1.0, "epoch": None})

    def save(self) -> None:
        """Everything --resume needs to go on as if nothing had stopped."""
        if self.is_main and self.settings.keep_state:
            T.save_state(self.state_path, model=self.model.state_dict(), optimizer=self.optimizer.state_dict(),
                         scheduler=self.scheduler.state_dict(), scaler=self.scaler.state_dict(), step=self.step,
                         best=self.best, rng=T.rng_state(), labels=self.model.config.labels,
                         multi_label=self.model.config.multi_label, settings=asdict(self.settings))

    def restore(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler") and self.scaler.is_enabled():  # saved under fp16 (a disabled scaler saves {})
            self.scaler.load_state_dict(state["scaler"])
        self.step, self.best = state["step"], state["best"]
        T.set_rng_state(state["rng"])


def finetune(train_records, dev_records, checkpoint, out_dir, settings: FinetuneSettings,
             resume: bool = False, dev_source: str = "dev") -> dict:
    """Fine-tune and keep the best checkpoint (by dev micro-F1) in out_dir/best."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state_path, log_path = out_dir / "last" / "state.pt", out_dir / "metrics.jsonl"
    if settings.windows < 1:
        raise T.TrainingError(f"--windows は 1 以上です ({settings.windows})")
    dist = T.Distributed(T.pick_device(settings.device))
    device = dist.device

    labels = sorted({name for r in train_records for name in r.labels})
    state = saved_state(state_path, resume)
    settings = resumed_settings(settings, state, labels, state_path) if state else settings
    check_cuda_graphs(settings, dist)  # the settings the run goes on with (a resumed run: the saved ones)
    if state:
        multi_label = state["multi_label"]
    else:
        multi_label = choose_multi_label(settings.multi_label, train_records)
        log_path.unlink(missing_ok=True)
    warn_unseen_labels(dev_records, labels, dev_source)
    model, tokenizer = load_classifier(checkpoint, labels, multi_label, settings)
    settings.max_length = fit_max_length(settings.max_length, model.config)
    model.to(device)

    cache = out_dir / "cache"
    train_enc = encode_records(tokenizer, train_records, settings.max_length, cache, WORKERS, settings.windows)
    dev_enc = encode_records(tokenizer, dev_records, settings.max_length, cache, WORKERS, settings.windows)
    train_y = targets(train_records, labels, multi_label)[train_enc["record"]]  # each window, its page's labels
    lengths = [len(x) for x in train_enc["input_ids"]]
    steps_per_epoch = len(dist.shard(length_bucketed_batches(lengths, settings.batch_size, seed=settings.seed)))
    total_steps = steps_per_epoch * settings.epochs
    run = start_run(model, settings, total_steps, dist, log_path, state_path)
    if state:
        run.restore(state)

    start = time.time()
    stopped = False
    with T.stop_between_steps(enabled=dist.world_size == 1) as interrupted:
        for epoch in range(run.step // steps_per_epoch, settings.epochs):
            batches = dist.shard(length_bucketed_batches(lengths, settings.batch_size, seed=settings.seed + epoch))
            stopped = train_epoch(run, epoch, batches, steps_per_epoch, train_enc, train_y, interrupted)
            if stopped:
                break
            if dist.is_main:
                evaluate_epoch(run, epoch, dev_enc, dev_records, out_dir, tokenizer)
            run.save()
            if interrupted.is_set() and run.step < total_steps:  # at an epoch's end: after its evaluation and state
                raise KeyboardInterrupt
            dist.barrier()
            if settings.stop_after_steps and run.step >= settings.stop_after_steps:
                stopped = run.step < total_steps
                break

    summary = {"best": run.best, "steps": run.step, "total_steps": total_steps, "stopped_early": stopped,
               "seconds": round(time.time() - start, 1), "device": str(device),
               "checkpoint": str(out_dir / "best"), "dev_predictions": str(out_dir / "dev_predictions.jsonl"),
               "labels": len(labels), "multi_label": multi_label}
    if dist.is_main:
        T.plot_learning_curve(T.read_log(log_path), out_dir / "learning_curve.png")
        (out_dir / "summary.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2) + "\n")
    dist.close()
    return summary


def saved_state(state_path: Path, resume: bool) -> dict | None:
    """The state to go on from (--resume), or None; says which it is."""
    state = T.load_state(state_path) if resume else None
    if state:
        print(f"再開: {state_path} のステップ {state['step']} から続けます", file=sys.stderr)
    elif state_path.is_file():
        print(f"注意: {state_path} に前の学習の状態があります。今回は最初から学習して上書きします"
              " (続きからなら --resume)", file=sys.stderr)
    return state


def resumed_settings(given: FinetuneSettings, state: dict, labels: list[str], state_path) -> FinetuneSettings:
    """A resumed run keeps its saved settings (only --stop-after-steps is new) and its labels."""
    check_same_labels(labels, state["labels"], state_path)
    kept = FinetuneSettings(**{**state["settings"], "stop_after_steps": given.stop_after_steps})
    warn_ignored_settings(given, kept)
    return kept


def choose_multi_label(multi_label: bool | None, records) -> bool:
    """--multi-label / --no-multi-label, or (None) multi-label when some page has several labels."""
    several = sum(len(r.labels) > 1 for r in records)
    if multi_label is None and several:
        print(f"注意: 複数のラベルを持つページが {several} 件あるので、複数ラベル分類にします"
              " (単一ラベルにするなら --no-multi-label)", file=sys.stderr)
    elif multi_label is False and several:
        print(f"注意: 単一ラベル分類なので、複数のラベルを持つ {several} 件のページは最初のラベルで学習します",
              file=sys.stderr)
    return bool(several) if multi_label is None else multi_label


def load_classifier(checkpoint, labels: list[str], multi_label: bool, settings: FinetuneSettings):
    """The checkpoint's encoder with a new classifier (seeded) for these labels, and its tokenizer."""
    directory = resolve_checkpoint(checkpoint)
    tokenizer = Tokenizer.from_pretrained(directory)
    torch.manual_seed(settings.seed)
    model, _ = load_model(directory, FastBertForSequenceClassification, labels=labels, multi_label=multi_label)
    model.unpad = settings.unpad
    check_vocab(tokenizer, model, directory)
    model.config.windows = settings.windows  # saved with the model: predict reads pages the same way
    return model, tokenizer


def start_run(model, settings: FinetuneSettings, total_steps: int, dist: T.Distributed, log_path: Path,
              state_path: Path) -> Run:
    """AdamW with warm-up then linear decay, on the model as the steps call it."""
    trained = dist.wrap(T.model_for_steps(model, settings.compile, settings.cuda_graphs, dynamic=True))
    optimizer = T.make_optimizer(model, settings.lr, settings.weight_decay, dist.device)
    scheduler = T.make_scheduler(optimizer, T.warmup_steps_for(total_steps, settings.warmup_ratio), total_steps)
    return Run(model, trained, optimizer, scheduler, T.grad_scaler(dist.device), settings, dist.device, log_path,
               state_path, is_main=dist.is_main)


def train_epoch(run: Run, epoch: int, batches: list, steps_per_epoch: int, encoded, y, interrupted) -> bool:
    """One pass over `batches` (indices of the encoded windows, whose targets are y),
    from where a resumed run left off. True: stopped early (--stop-after-steps).
    Ctrl-C (interrupted set) saves the state and raises KeyboardInterrupt."""
    settings = run.settings
    done_in_epoch = run.step - epoch * steps_per_epoch
    run.model.train()
    bar = tqdm(batches[done_in_epoch:], desc=f"エポック {epoch + 1}/{settings.epochs}",
               initial=done_in_epoch, total=len(batches),  # a resumed epoch shows where it is
               **({} if run.is_main else {"disable": True}))  # TQDM_DISABLE still works
    for batch_idx in bar:
        loss = train_step(run.trained, run.optimizer, run.scheduler, batch_idx, encoded, y, settings, run.device,
                          run.scaler)
        run.step += 1
        if run.step % 10 == 0 or run.step == 1:  # reading the loss waits for the GPU: not at every step
            loss = loss.item()
            bar.set_postfix(loss=f"{loss:.4f}", refresh=False)  # drawn at tqdm's pace
            if run.is_main:
                T.append_log(run.log_path, {"step": run.step, "epoch": epoch + 1, "loss": loss,
                                        "lr": run.scheduler.get_last_lr()[0]})
        action = after_step(run.step, steps_per_epoch, settings, interrupted.is_set())
        if action:
            run.save()
        if action == "interrupt":
            raise KeyboardInterrupt
        if action == "stop":
            return True
    return False


def evaluate_epoch(run: Run, epoch: int, dev_enc, dev_records, out_dir: Path, tokenizer) -> None:
    """Dev micro-F1 after an epoch; a new best model goes to out_dir/best, with its dev answers."""
    f1, rows = evaluate(run.model, dev_enc, dev_records, run.model.config.labels, run.settings, run.device)
    T.append_log(run.log_path, {"step": run.step, "epoch": epoch + 1, "dev_micro_f1": f1})
    print(f"エポック {epoch + 1}: dev micro-F1 = {f1:.2f}", file=sys.stderr)
    if f1 > run.best["dev_micro_f1"]:
        run.best = {"dev_micro_f1": f1, "epoch": epoch + 1}
        save_model(run.model, out_dir / "best", tokenizer)
        write_json_lines(out_dir / "dev_predictions.jsonl", rows)  # the best model's answers


def after_step(step: int, steps_per_epoch: int, settings: FinetuneSettings, ctrl_c_pressed: bool) -> str | None:
    """What the loop does after `step`, inside an epoch (its end has its own evaluation
    and save): "interrupt" (Ctrl-C), "stop" (--stop-after-steps) or "save"
    (--save-every), each with the state saved first; None: go on."""
    if step % steps_per_epoch == 0:
        return None
    if ctrl_c_pressed:
        return "interrupt"
    if settings.stop_after_steps and step >= settings.stop_after_steps:
        return "stop"
    if step % settings.save_every == 0:
        return "save"
    return None


def check_cuda_graphs(settings: FinetuneSettings, dist: T.Distributed) -> None:
    """CUDA graphs replay fixed shapes on one GPU: not with packed batches or several GPUs."""
    if not settings.cuda_graphs:
        return
    if settings.unpad:
        raise T.TrainingError("--cuda-graphs と --unpad は一緒に使えません (詰めたバッチは毎回形が変わります)")
    if dist.world_size > 1:
        raise T.TrainingError("--cuda-graphs は GPU 1 枚の学習でだけ使えます (torchrun の複数プロセスでは外してください)")


def train_step(model, optimizer, scheduler, batch_idx, encoded, y, settings, device, scaler) -> torch.Tensor:
    """One update on the examples batch_idx. scaler: fp16's loss scaling (T.grad_scaler).
    Returns the loss as a tensor, still on the device: loss.item() would make the CPU
    wait for the GPU, and the GPU would then wait while the CPU pads the next batch.
    With CUDA graphs, lengths are padded to a multiple of 16: a graph for each length."""
    batch = pad_batch([encoded["input_ids"][i] for i in batch_idx], 0,
                      [encoded["token_type_ids"][i] for i in batch_idx],
                      multiple=T.GRAPH_LENGTH_MULTIPLE if settings.cuda_graphs else 1, limit=settings.max_length)
    batch = T.batch_to_device(batch, device)
    with T.autocast(device):
        out = model(**batch, labels=T.to_device(y[batch_idx], device))
    scaler.scale(out["loss"]).backward()
    scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
    torch.nn.utils.clip_grad_norm_(model.parameters(), settings.clip_norm)
    scaler.step(optimizer)      # optimizer.step(), unless a gradient overflowed
    scaler.update()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return out["loss"].detach()


def fit_max_length(max_length: int, config) -> int:
    """No longer than the model has position embeddings for."""
    if max_length > config.max_position_embeddings:
        print(f"注意: max_length {max_length} をモデルの位置数 {config.max_position_embeddings} に縮めます",
              file=sys.stderr)
        return config.max_position_embeddings
    return max_length


def check_same_labels(labels, saved_labels, state_path) -> None:
    if labels != saved_labels:
        extra = sorted(set(labels) - set(saved_labels))[:5]
        gone = sorted(set(saved_labels) - set(labels))[:5]
        raise T.TrainingError(
            f"{state_path}: 訓練データのラベル集合が中断した学習と違います"
            f" (増えたラベル {extra}, 消えたラベル {gone})。同じデータで --resume してください")
