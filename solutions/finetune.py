"""Fine-tuning a BERT classifier from a checkpoint, with resume after an interruption."""
from __future__ import annotations

import json
import sys
from collections import Counter
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from . import training as T
from .batching import length_bucketed_batches, pad_batch, sorted_batches
from .checkpoints import load_model, resolve_checkpoint, save_model
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


def warn_ignored_settings(given: FinetuneSettings, saved: dict) -> None:
    """--resume goes on with the saved settings: say which of the given ones it does not use."""
    differ = [f"{key} (指定 {value}、保存 {saved[key]})" for key, value in asdict(given).items()
              if key != "stop_after_steps" and key in saved and saved[key] != value]
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


def finetune(train_records, dev_records, checkpoint, out_dir, settings: FinetuneSettings,
             resume: bool = False, dev_source: str = "dev") -> dict:
    """Fine-tune and keep the best checkpoint (by dev micro-F1) in out_dir/best."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state_path, log_path = out_dir / "last" / "state.pt", out_dir / "metrics.jsonl"
    if settings.windows < 1:
        raise T.TrainingError(f"--windows は 1 以上です ({settings.windows})")
    device = T.pick_device(settings.device)
    dist = T.Distributed(device)
    device = dist.device

    state = T.load_state(state_path) if resume else None
    if state:
        print(f"再開: {state_path} のステップ {state['step']} から続けます", file=sys.stderr)
    elif state_path.is_file():
        print(f"注意: {state_path} に前の学習の状態があります。今回は最初から学習して上書きします"
              " (続きからなら --resume)", file=sys.stderr)
    labels = sorted({name for r in train_records for name in r.labels})
    if state:
        check_same_labels(labels, state["labels"], state_path)
        warn_ignored_settings(settings, state["settings"])
        settings = FinetuneSettings(**{**state["settings"], "stop_after_steps": settings.stop_after_steps})
        multi_label = state["multi_label"]
    else:
        multi_label = settings.multi_label
        several = sum(len(r.labels) > 1 for r in train_records)
        if multi_label is None and several:
            print(f"注意: 複数のラベルを持つページが {several} 件あるので、複数ラベル分類にします"
                  " (単一ラベルにするなら --no-multi-label)", file=sys.stderr)
        elif multi_label is False and several:
            print(f"注意: 単一ラベル分類なので、複数のラベルを持つ {several} 件のページは最初のラベルで学習します",
                  file=sys.stderr)
        multi_label = bool(several) if multi_label is None else multi_label
        log_path.unlink(missing_ok=True)
    warn_unseen_labels(dev_records, labels, dev_source)

    directory = resolve_checkpoint(checkpoint)
    tokenizer = Tokenizer.from_pretrained(directory)
    torch.manual_seed(settings.seed)
    model, _ = load_model(directory, FastBertForSequenceClassification, labels=labels, multi_label=multi_label)
    model.unpad = settings.unpad
    check_vocab(tokenizer, model, directory)
    settings.max_length = fit_max_length(settings.max_length, model.config)
    model.config.windows = settings.windows  # saved with the model: predict reads pages the same way
    model.to(device)

    cache = out_dir / "cache"
    train_enc = encode_records(tokenizer, train_records, settings.max_length, cache, WORKERS, settings.windows)
    dev_enc = encode_records(tokenizer, dev_records, settings.max_length, cache, WORKERS, settings.windows)
    train_y = targets(train_records, labels, multi_label)[train_enc["record"]]  # each window, its page's labels

    lengths = [len(x) for x in train_enc["input_ids"]]
    steps_per_epoch = len(dist.shard(length_bucketed_batches(lengths, settings.batch_size, seed=settings.seed)))
    total_steps = steps_per_epoch * settings.epochs
    trained = dist.wrap(T.compile_layers(model, dynamic=True) if settings.compile else model)
    optimizer = T.make_optimizer(model, settings.lr, settings.weight_decay, device)
    scheduler = T.make_scheduler(optimizer, T.warmup_steps_for(total_steps, settings.warmup_ratio), total_steps)
    scaler = T.grad_scaler(device)

    step, best = 0, {"dev_micro_f1": -1.0, "epoch": None}
    if state:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler") and scaler.is_enabled():  # saved under fp16 (a disabled scaler saves {})
            scaler.load_state_dict(state["scaler"])
        step, best = state["step"], state["best"]
        T.set_rng_state(state["rng"])

    def save(epoch_done: bool):
        if dist.is_main and settings.keep_state:
            T.save_state(state_path, model=model.state_dict(), optimizer=optimizer.state_dict(),
                         scheduler=scheduler.state_dict(), scaler=scaler.state_dict(), step=step, best=best,
                         rng=T.rng_state(), labels=labels, multi_label=multi_label, settings=asdict(settings))

    start = time.time()
    stopped = False
    with T.stop_between_steps(enabled=dist.world_size == 1) as interrupted:
        for epoch in range(step // steps_per_epoch, settings.epochs):
            batches = dist.shard(length_bucketed_batches(lengths, settings.batch_size, seed=settings.seed + epoch))
            done_in_epoch = step - epoch * steps_per_epoch
            model.train()
            bar = tqdm(batches[done_in_epoch:], desc=f"エポック {epoch + 1}/{settings.epochs}",
                       initial=done_in_epoch, total=len(batches),  # a resumed epoch shows where it is
                       **({} if dist.is_main else {"disable": True}))  # TQDM_DISABLE still works
            for batch_idx in bar:
                loss = train_step(trained, optimizer, scheduler, batch_idx, train_enc, train_y, settings, device,
                                  scaler)
                step += 1
                if step % 10 == 0 or step == 1:  # reading the loss waits for the GPU: not at every step
                    loss = loss.item()
                    bar.set_postfix(loss=f"{loss:.4f}", refresh=False)  # drawn at tqdm's pace
                    if dist.is_main:
                        T.append_log(log_path, {"step": step, "epoch": epoch + 1, "loss": loss,
                                                "lr": scheduler.get_last_lr()[0]})
                action = after_step(step, steps_per_epoch, settings, interrupted.is_set())
                if action:
                    save(False)
                if action == "interrupt":
                    raise KeyboardInterrupt
                if action == "stop":
                    stopped = True
                    break
            if stopped:
                break
            if dist.is_main:
                f1, rows = evaluate(model, dev_enc, dev_records, labels, settings, device)
                T.append_log(log_path, {"step": step, "epoch": epoch + 1, "dev_micro_f1": f1})
                print(f"エポック {epoch + 1}: dev micro-F1 = {f1:.2f}", file=sys.stderr)
                if f1 > best["dev_micro_f1"]:
                    best = {"dev_micro_f1": f1, "epoch": epoch + 1}
                    save_model(model, out_dir / "best", tokenizer)
                    write_json_lines(out_dir / "dev_predictions.jsonl", rows)  # the best model's answers
            save(True)
            if interrupted.is_set() and step < total_steps:  # at an epoch's end: after its evaluation and state
                raise KeyboardInterrupt
            dist.barrier()
            if settings.stop_after_steps and step >= settings.stop_after_steps:
                stopped = step < total_steps
                break

    summary = {"best": best, "steps": step, "total_steps": total_steps, "stopped_early": stopped,
               "seconds": round(time.time() - start, 1), "device": str(device),
               "checkpoint": str(out_dir / "best"), "dev_predictions": str(out_dir / "dev_predictions.jsonl"),
               "labels": len(labels), "multi_label": multi_label}
    if dist.is_main:
        T.plot_learning_curve(T.read_log(log_path), out_dir / "learning_curve.png")
        (out_dir / "summary.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2) + "\n")
    dist.close()
    return summary


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


def train_step(model, optimizer, scheduler, batch_idx, encoded, y, settings, device, scaler) -> torch.Tensor:
    """One update on the examples batch_idx. scaler: fp16's loss scaling (T.grad_scaler).
    Returns the loss as a tensor, still on the device: loss.item() would make the CPU
    wait for the GPU, and the GPU would then wait while the CPU pads the next batch."""
    batch = pad_batch([encoded["input_ids"][i] for i in batch_idx], 0,
                      [encoded["token_type_ids"][i] for i in batch_idx])
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


def check_vocab(tokenizer, model, directory) -> None:
    if tokenizer.vocab_size != model.config.vocab_size:
        raise T.TrainingError(
            f"{directory}: vocab.txt の語彙数 ({tokenizer.vocab_size}) が config.json の "
            f"vocab_size ({model.config.vocab_size}) と一致しません")
