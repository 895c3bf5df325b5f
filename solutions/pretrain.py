"""Pre-training a BERT from scratch by masked language modelling (MLM)."""
from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import torch
from tqdm.auto import tqdm

from . import training as T
from .checkpoints import save_model
from .config import SIZES, BertConfig
from .encoding import WORKERS
from .mlm import continuation_flags, mask_tokens, mask_whole_words, maskable_positions
from .models import BertForMaskedLM
from .tokenization import Tokenizer, train_vocab


@dataclass
class PretrainSettings:
    size: str = "tiny"
    vocab_size: int = 8000
    max_length: int = 128
    batch_size: int = 64
    lr: float = 5e-4
    warmup_ratio: float = 0.06
    weight_decay: float = 0.01
    max_steps: int = 1000
    minutes: float | None = None   # a time budget; the schedule is fitted to it
    mask_prob: float = 0.15        # BERT's 15%; more gives more signal per step
    whole_word_mask: bool = False  # choose MeCab words, all their pieces at once (bert-base-japanese-v3)
    short_length: int | None = None  # first train on blocks this long (BERT: 128), then max_length
    short_share: float = 0.9       # share of the steps (or of the time budget) on short blocks
    copy_positions: bool = False   # longer blocks start their new positions as copies of the trained ones
    shuffle_documents: bool = True  # every pass packs the documents in a new order (new blocks)
    clip_norm: float = 1.0
    eval_every: int = 200          # steps between held-out evaluations (when held-out text is given)
    seed: int = 0
    device: str = "auto"
    compile: bool = False


def pack_sequences(token_lists, tokenizer, max_length: int, what: str = "事前学習のテキスト",
                   order=None) -> torch.Tensor:
    """Concatenate documents (separated by [SEP]) and cut them into full blocks
    "[CLS] … [SEP]" of exactly max_length tokens: no padding to compute on.
    order: the documents' order in the stream (default: as given)."""
    body = max_length - 2
    separator = torch.tensor([tokenizer.sep_id])
    documents = token_lists if order is None else [token_lists[i] for i in order]
    pieces = [torch.empty(0, dtype=torch.long)]
    for ids in documents:  # each document, then [SEP]
        pieces += [torch.as_tensor(ids, dtype=torch.long), separator]
    stream = torch.cat(pieces)
    n_blocks = len(stream) // body
    if n_blocks == 0:
        raise T.TrainingError(f"{what}が短すぎます ({len(stream)} トークン; 1 ブロック {body} トークン必要)")
    blocks = stream[: n_blocks * body].view(n_blocks, body)
    cls = torch.full((n_blocks, 1), tokenizer.cls_id)
    sep = torch.full((n_blocks, 1), tokenizer.sep_id)
    return torch.cat([cls, blocks, sep], dim=1)


def repacked(documents, tokenizer, max_length: int, generator) -> torch.Tensor:
    """The documents packed again in a new random order, for the next pass over them.
    A text read for many passes (epochs) then comes in new blocks each time: other
    neighbours, other cut points (Megatron-LM shuffles its documents every epoch).
    documents: token id tensors (lists work too, more slowly)."""
    order = torch.randperm(len(documents), generator=generator).tolist()
    return pack_sequences(documents, tokenizer, max_length, order=order)


def document_token_ids(tokenizer, texts, workers: int = 1) -> list[list[int]]:
    """Token ids of each text without [CLS]/[SEP] and without truncation.
    Texts given as (title, body) pairs become "title [SEP] body", the way
    fine-tuning reads a page ("[CLS] title [SEP] body [SEP]")."""
    firsts, seconds = texts, None
    if texts and isinstance(texts[0], tuple):  # (title, body) pairs: titles first, bodies second
        firsts, seconds = map(list, zip(*texts))
    encoded = tokenizer.encode_batch(firsts, seconds, max_length=10**7, padding=False, workers=workers)
    return [ids[1:-1] for ids in encoded["input_ids"]]


def page_texts(records) -> list[tuple[str, str]]:
    """Pages (records with a title and a text) as pre-training reads them: (title, body) pairs."""
    return [(r.title, r.text) for r in records]


def joined(texts) -> list[str]:
    """Each text as one string (a pair's title and body on two lines), for training the vocabulary."""
    return [text if isinstance(text, str) else "\n".join(text) for text in texts]


def segment_ids(blocks: torch.Tensor, sep_id: int) -> torch.Tensor:
    """BERT's two segments in each block: 0 up to and including the first [SEP], 1 after it,
    as in "[CLS] title [SEP] body [SEP]". Fine-tuning gives every body token segment 1;
    without it here, that embedding would reach fine-tuning untrained (random)."""
    is_sep = (blocks == sep_id).long()
    return ((is_sep.cumsum(dim=-1) - is_sep) > 0).long()


def length_phases(token_lists, tokenizer, settings: PretrainSettings) -> list[tuple]:
    """[(blocks, batch size, until)]: train on each phase's blocks until that share of
    the run is done. BERT's recipe: most steps on short blocks (cheaper, and quicker
    to learn from), the rest at full length so that every position gets trained.
    Each step holds the same number of tokens."""
    full = (pack_sequences(token_lists, tokenizer, settings.max_length), settings.batch_size, float("inf"))
    if not settings.short_length or settings.short_length >= settings.max_length:
        return [full]
    short_batch = settings.batch_size * settings.max_length // settings.short_length
    short = pack_sequences(token_lists, tokenizer, settings.short_length)
    return [(short, short_batch, settings.short_share), full]


def copy_position_embeddings(model, trained: int, length: int) -> None:
    """Give positions trained..length-1 the embeddings of 0..trained-1, repeated.
    After short blocks, the positions beyond them were never trained (still random);
    copies start them from learned values instead (Longformer's way to extend a BERT)."""
    weight = model.bert.embeddings.position.weight
    with torch.no_grad():
        for start in range(trained, length, trained):
            stop = min(start + trained, length)
            weight[start:stop] = weight[:stop - start]


def unigram_loss(blocks: torch.Tensor) -> float:
    """The MLM loss (nats) of a guesser that ignores the context and gives each token
    its frequency in the training blocks: their entropy. A loss below it means the
    model reads the words around the mask; log(vocabulary size) is a blind guess."""
    ids = blocks[maskable_positions(blocks)]
    p = torch.bincount(ids).double() / len(ids)
    p = p[p > 0]
    return float(-(p * p.log()).sum())


def heldout_samples(token_lists, tokenizer, lengths, settings: PretrainSettings, blocks: int = 64) -> dict:
    """{block length: (masked ids, labels, segment ids)}: a fixed sample of held-out text, masked
    once (BERT's 15% of the tokens, whatever the training masking), so every evaluation scores the
    same tokens and runs with different settings can be compared."""
    samples = {}
    for length in sorted(set(lengths)):
        packed = pack_sequences(token_lists, tokenizer, length, what="評価用 (held-out) のテキスト")
        order = torch.randperm(len(packed), generator=torch.Generator().manual_seed(settings.seed))
        sample = packed[order[:blocks]]
        masked, labels = mask_tokens(sample, tokenizer.vocab_size, mask_id=tokenizer.mask_id,
                                     generator=torch.Generator().manual_seed(settings.seed + 1))
        samples[length] = masked, labels, segment_ids(sample, tokenizer.sep_id)
    return samples


@torch.no_grad()
def heldout_metrics(model, sample, batch_size: int, device) -> dict:
    """MLM loss and accuracy on the held-out masked tokens, dropout off.
    A training loss that falls while this one rises means memorising."""
    masked, labels, segments = sample
    model.eval()
    loss_sum, correct, count = 0.0, 0, 0
    for first in range(0, len(masked), batch_size):
        x, y, t = (part[first:first + batch_size].to(device) for part in (masked, labels, segments))
        with T.autocast(device):
            out = model(x, token_type_ids=t, labels=y)
        targets = y[y != -100]
        loss_sum += out["loss"].item() * len(targets)
        correct += int((out["logits"].argmax(-1) == targets).sum())
        count += len(targets)
    model.train()
    return {"dev_loss": loss_sum / count, "dev_accuracy": correct / count}


def masking(tokenizer, settings: PretrainSettings):
    """(ids, generator) -> (masked ids, labels): BERT's masking of tokens, or of whole words."""
    options = dict(mask_id=tokenizer.mask_id, mask_prob=settings.mask_prob)
    if settings.whole_word_mask:
        return partial(mask_whole_words, is_continuation=continuation_flags(tokenizer.id_to_token),
                       vocab_size=tokenizer.vocab_size, **options)
    return partial(mask_tokens, vocab_size=tokenizer.vocab_size, **options)


def model_config(settings: PretrainSettings, vocab_size: int) -> BertConfig:
    if settings.size not in SIZES:
        raise T.TrainingError(f"--size は {', '.join(SIZES)} のどれかです ({settings.size!r})")
    return BertConfig(vocab_size=vocab_size, max_position_embeddings=max(512, settings.max_length),
                      **SIZES[settings.size])


@dataclass
class MLMRun:
    """One pre-training run: the model, what updates it, and how far it is."""
    model: BertForMaskedLM
    trained: torch.nn.Module  # the model as the steps call it (compiled or not)
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    plan: dict                # {"total": steps, "warmup": steps}: a time budget moves them
    step: int = 0
    loss: torch.Tensor | float = float("nan")  # the last step's, still on the device until read


def start_mlm_run(model, settings: PretrainSettings, device) -> MLMRun:
    """AdamW with warm-up then linear decay, over a plan of steps that a time budget can change."""
    # Static shapes: one graph per block length (two at most), no slower dynamic kernels.
    trained = T.compile_layers(model, dynamic=False) if settings.compile else model
    optimizer = T.make_optimizer(model, settings.lr, settings.weight_decay, device)
    plan = {"total": settings.max_steps, "warmup": T.warmup_steps_for(settings.max_steps, settings.warmup_ratio)}
    scheduler = torch.optim.lr_scheduler.LambdaLR(  # reads the plan at every step
        optimizer, lambda s: T.warmup_linear_decay(s, plan["warmup"], plan["total"]))
    return MLMRun(model, trained, optimizer, scheduler, T.grad_scaler(device), plan)


def block_batches(blocks: torch.Tensor, batch_size: int, documents, tokenizer, generator, settings):
    """One pass over the blocks, in random order. With settings.shuffle_documents,
    new blocks of the same length are packed from the documents first (`blocks`
    then only gives their length). Full batches only: every step the same shape
    (a compiled model compiles once per length)."""
    if settings.shuffle_documents:  # a new pass over the text: new blocks
        blocks = repacked(documents, tokenizer, blocks.shape[1], generator)
    batch_size = min(batch_size, len(blocks))
    order = torch.randperm(len(blocks), generator=generator)
    for first in range(0, len(order) - batch_size + 1, batch_size):
        yield blocks[order[first:first + batch_size]]


def log_loss_and_heldout(run: MLMRun, ids, bar, log_path, started: float, heldout: dict, eval_every: int, device) -> None:
    """The loss in the log and on the bar every 10 steps (reading it waits for the GPU),
    with the held-out loss and accuracy every eval_every steps."""
    evaluate = heldout and run.step % eval_every == 0
    if not (run.step % 10 == 0 or run.step == 1 or evaluate):
        return
    run.loss = run.loss.item()
    bar.set_postfix(loss=f"{run.loss:.3f}", refresh=False)  # drawn at tqdm's pace
    entry = {"step": run.step, "loss": run.loss, "seconds": round(time.time() - started, 2), "length": ids.shape[1]}
    if evaluate:
        entry.update(heldout_metrics(run.model, heldout[ids.shape[1]], len(ids), device))
    T.append_log(log_path, entry)


def fraction_done(run: MLMRun, started: float, settings: PretrainSettings) -> float:
    """How much of the run is done: of the time budget, or of the steps."""
    if settings.minutes:
        return (time.time() - started) / (60 * settings.minutes)
    return run.step / run.plan["total"]


def pretrain(texts: list, out_dir, settings: PretrainSettings, dev_texts: list | None = None) -> dict:
    """Train a vocabulary, then an MLM BERT; save both in the Hugging Face layout.
    texts (and dev_texts): strings, or (title, body) pairs (see document_token_ids).
    With dev_texts (never trained on), the MLM loss and accuracy on them are
    logged every settings.eval_every steps and at the end."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    log_path = out_dir / "metrics.jsonl"
    log_path.unlink(missing_ok=True)
    device = T.pick_device(settings.device)
    torch.manual_seed(settings.seed)

    print(f"語彙を学習しています (目標 {settings.vocab_size} 語)…", file=sys.stderr)
    tokenizer = Tokenizer(train_vocab(joined(texts), settings.vocab_size))
    documents = [torch.tensor(ids, dtype=torch.long) for ids in document_token_ids(tokenizer, texts, WORKERS)]
    phases = length_phases(documents, tokenizer, settings)
    heldout = (heldout_samples(document_token_ids(tokenizer, dev_texts, WORKERS), tokenizer,
                               [blocks.shape[1] for blocks, _, _ in phases], settings) if dev_texts else {})
    model = BertForMaskedLM(model_config(settings, tokenizer.vocab_size)).to(device)
    run = start_mlm_run(model, settings, device)
    generator = torch.Generator().manual_seed(settings.seed)
    mask = masking(tokenizer, settings)

    start = time.time()
    # With a time budget the number of steps is known only once the speed is (from step 20 on).
    bar = tqdm(total=None if settings.minutes else run.plan["total"], desc="事前学習 (MLM)")
    model.train()
    with T.stop_between_steps() as interrupted:  # Ctrl-C: the model so far is saved
        phase = 0
        while run.step < run.plan["total"] and not interrupted.is_set():
            blocks, batch_size, until = phases[phase]
            for ids in block_batches(blocks, batch_size, documents, tokenizer, generator, settings):
                masked, labels = mask(ids, generator=generator)
                run.loss = mlm_step(run.trained, run.optimizer, run.scheduler, T.to_device(masked, device),
                                    T.to_device(labels, device), settings.clip_norm, device, run.scaler,
                                    T.to_device(segment_ids(ids, tokenizer.sep_id), device))
                run.step += 1
                bar.update(1)
                log_loss_and_heldout(run, ids, bar, log_path, start, heldout, settings.eval_every, device)
                if settings.minutes and run.step % 10 == 0:
                    if fit_schedule_to_budget(run.plan, run.step, time.time() - start, settings):
                        bar.total = run.plan["total"]
                if run.step >= run.plan["total"] or interrupted.is_set():
                    break
                if fraction_done(run, start, settings) >= until:  # on to the next (longer) blocks; slower steps
                    phase += 1
                    run.plan.pop("mark", None)
                    if settings.copy_positions:
                        copy_position_embeddings(model, ids.shape[1], phases[phase][0].shape[1])
                    break
        stopped_at = phases[phase][0].shape[1]
        if interrupted.is_set() and settings.copy_positions and stopped_at < phases[-1][0].shape[1]:
            # stopped before the longest blocks: their positions start as the switch would have made them
            copy_position_embeddings(model, stopped_at, phases[-1][0].shape[1])
        bar.close()
        loss = float(run.loss)
        final = {}
        if heldout:  # the final model, on full-length blocks
            length = phases[-1][0].shape[1]
            final = heldout_metrics(model, heldout[length], phases[-1][1], device)
            T.append_log(log_path, {"step": run.step, "loss": loss, "seconds": round(time.time() - start, 2),
                                    "length": length, **final})

        save_model(model, out_dir, tokenizer)
    unigram = unigram_loss(phases[-1][0])
    T.plot_learning_curve(T.read_log(log_path), out_dir / "learning_curve.png", "事前学習 (MLM) の損失",
                          baselines={"頻度だけで当てたときの損失": unigram})
    summary = {"steps": run.step, "final_loss": loss, "unigram_loss": unigram,
               "seconds": round(time.time() - start, 1),
               "interrupted": interrupted.is_set(), "longest_trained_block": stopped_at,
               "blocks": len(phases[-1][0]), "tokens_per_block": settings.max_length,
               "phases": [{"tokens_per_block": b.shape[1], "blocks": len(b), "batch_size": n} for b, n, _ in phases],
               "device": str(device), **final,
               "vocab_size": tokenizer.vocab_size, "settings": asdict(settings)}
    (out_dir / "pretrain_summary.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2) + "\n")
    return summary


def fit_schedule_to_budget(plan: dict, steps_done: int, seconds: float, settings) -> bool:
    """Re-estimate the total steps from the speed so far, so that training
    (and the learning-rate decay) ends when the time budget does. Says whether it did.

    The speed is measured from step 10 on: the first steps are slow (CUDA
    start-up, compiling). The warm-up is re-fitted only while it lasts."""
    if steps_done <= 10 or "mark" not in plan:  # the first steps, or the first of a new phase
        plan["mark"] = (steps_done, seconds)
        return False
    mark_step, mark_seconds = plan["mark"]
    per_step = (seconds - mark_seconds) / (steps_done - mark_step)
    left = max(0.0, settings.minutes * 60 - seconds)
    plan["total"] = min(settings.max_steps, steps_done + int(left / per_step))
    if steps_done < plan["warmup"]:
        plan["warmup"] = max(steps_done, T.warmup_steps_for(plan["total"], settings.warmup_ratio))
    return True


def mlm_step(model, optimizer, scheduler, masked, labels, clip_norm, device, scaler,
             token_type_ids=None) -> torch.Tensor:
    """One update; the same steps as finetune.train_step (scaler: T.grad_scaler). The
    loss comes back as a tensor on the device: reading it waits for the GPU."""
    with T.autocast(device):  # packed blocks hold no [PAD]: no attention mask
        loss = model(masked, token_type_ids=token_type_ids, labels=labels)["loss"]
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
    scaler.step(optimizer)
    scaler.update()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.detach()
