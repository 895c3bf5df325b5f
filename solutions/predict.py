"""Predicting labels for a stream of pages, written as a submission file."""
from __future__ import annotations

import contextlib
import itertools
import sys
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

from tqdm.auto import tqdm

from . import training as T
from .ene import ene_ids, is_ene_label_set
from .checkpoints import check_vocab, load_model, resolve_checkpoint
from .config import BertConfig
from .data import DataError, write_json_lines, write_shinra_submission
from .encoding import WORKERS, encode_records
from .finetune import answer_row, fit_max_length, predict_label_sets, scored_labels
from .fast import FastBertForSequenceClassification
from .tokenization import Tokenizer

PAGES_PER_CHUNK = 2_000  # tokenized, sorted by length and predicted together


def chunks(iterable, size: int):
    """Lists of up to `size` items, so memory stays bounded on huge inputs."""
    it = iter(iterable)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


def prefetched(pieces, encode, background=None):
    """(chunk, encode(chunk)) for each chunk of `pieces`, in order. With a
    `background` executor the next chunk is already being encoded while the
    caller works on this one; without, each is encoded when it is needed."""
    pieces = iter(pieces)
    chunk = next(pieces, None)
    pending = start(encode, chunk, background)
    while chunk is not None:
        encoded = pending()
        following = next(pieces, None)
        pending = start(encode, following, background)
        yield chunk, encoded
        chunk = following


def start(encode, chunk, background):
    """A function that returns encode(chunk): running in the background from now
    on, or (without an executor) run when called."""
    if background is None:
        return partial(encode, chunk)
    return background.submit(encode, chunk).result


def advancing(bar, pages: int, examples: int):
    """A callback for each predicted batch of a chunk of `pages` pages (`examples`
    windows): it moves `bar` by the pages those windows stand for, so the bar
    moves with every batch and reaches the chunk's end with its last one."""
    done = shown = 0

    def advance(batch_examples: int) -> None:
        nonlocal done, shown
        done += batch_examples
        now = pages * done // examples
        bar.update(now - shown)
        shown = now
    return advance


def probabilities_by_chunk(model, tokenizer, records, *, batch_size=64, max_length=256, device,
                           threshold=0.5, chunk_size=PAGES_PER_CHUNK, windows=None, workers=WORKERS,
                           bar=None):
    """Yield (pages, probabilities, chosen label indices), `chunk_size` pages at a time.

    Inside a chunk, pages are sorted by length into batches (little padding).
    `workers` tokenizer processes are started once. On a GPU they already
    tokenize the next chunk while the GPU works on this one; on a CPU the model
    keeps every core busy, so tokenizing alongside it would only slow it down.
    windows: chunks per long page (None: as the model was fine-tuned).
    bar: a page progress bar, moved as each batch is predicted.
    """
    windows = windows or model.config.windows
    overlap = ThreadPoolExecutor(1) if device.type == "cuda" else contextlib.nullcontext()
    with tokenizer.worker_pool(workers if workers > 1 else 0) as pool, overlap as background:
        encode = partial(encode_records, tokenizer, max_length=max_length, windows=windows, pool=pool)
        for chunk, encoded in prefetched(chunks(records, chunk_size), encode, background):
            on_batch = advancing(bar, len(chunk), len(encoded["input_ids"])) if bar is not None else None
            probs, chosen = predict_label_sets(model, encoded, batch_size, device,
                                               model.config.multi_label, threshold, on_batch=on_batch)
            yield chunk, probs, chosen


def predictions(model, tokenizer, records, *, batch_size=64, max_length=256, device,
                threshold=0.5, chunk_size=PAGES_PER_CHUNK, windows=None, total=None):
    """Yield (record, [(label, probability), ...]) in input order.

    Pages are read `chunk_size` at a time, so memory stays bounded on huge inputs
    (see probabilities_by_chunk). total: the number of pages expected, for the
    progress bar (None: unknown)."""
    labels = model.config.labels
    with tqdm(desc="予測", unit="ページ", total=total) as bar:
        for chunk, probs, chosen in probabilities_by_chunk(
                model, tokenizer, records, batch_size=batch_size, max_length=max_length, device=device,
                threshold=threshold, chunk_size=chunk_size, windows=windows, bar=bar):
            for record, p, c in zip(chunk, probs, chosen):
                yield record, scored_labels(labels, p, c)
        if bar.total and bar.n < bar.total:  # lines skipped as unreadable (and warned) are no pages
            bar.total = bar.n


def check_classifier_checkpoint(directory: Path) -> None:
    """A pre-trained (MLM) checkpoint has no labels: say which checkpoint predict needs."""
    config_path = Path(directory) / "config.json"
    if config_path.is_file():
        config = BertConfig.load(config_path)
        if not config.labels:
            raise T.TrainingError(f"{directory}: 分類器のチェックポイントではありません (ラベルがありません)。"
                                  "train で作ったチェックポイント (train の --out の best/) を指定してください")


def check_output_format(output_format: str, labels: list[str], directory) -> str:
    """The format to write: "auto" becomes shinra for ENE labels, else simple; a
    SHINRA submission of labels that are no ENE ids is refused before any work."""
    if output_format == "auto":
        return "shinra" if is_ene_label_set(labels) else "simple"
    if output_format == "shinra" and not is_ene_label_set(labels):
        example = next((name for name in labels if name not in ene_ids()), labels[0])
        raise T.TrainingError(f"{directory}: このモデルのラベル ({example!r} など) は ENE の ID ではないので、"
                              "森羅の提出形式 (shinra) では書けません。簡易形式 (--format simple) にしてください")
    return output_format


def predict_file(checkpoint, records, output_path, *, output_format="auto", system="MyBERT",
                 yyyymm=None, batch_size=64, max_length=256, device="auto", threshold=0.5,
                 chunk_size=PAGES_PER_CHUNK, windows=None, unpad=False, count_pages=None) -> dict:
    """Write predictions for `records` (any iterable of Record) to output_path.

    output_format: "shinra" (the SHINRA submission), "simple"
    ({"page_id", "labels", "probs"} a line), or "auto" (shinra for ENE labels).
    unpad: take [PAD] out of the computation (solutions.fast; the same labels).
    count_pages: a function that counts the pages of `records`, for the progress
    bar; called once the checkpoint and the format have been checked.
    """
    directory = resolve_checkpoint(checkpoint)
    check_classifier_checkpoint(directory)
    model, missing = load_model(directory, FastBertForSequenceClassification)
    model.unpad = unpad
    if missing:
        raise T.TrainingError(f"{directory}: 分類層の重みがありません。train で作ったチェックポイントを指定してください")
    tokenizer = Tokenizer.from_pretrained(directory)
    check_vocab(tokenizer, model, directory)
    device = T.pick_device(device)
    max_length = fit_max_length(max_length, model.config)
    output_format = check_output_format(output_format, model.config.labels, directory)
    model.to(device)
    stream = predictions(model, tokenizer, records, batch_size=batch_size, max_length=max_length,
                         device=device, threshold=threshold, chunk_size=chunk_size, windows=windows,
                         total=count_pages() if count_pages else None)
    counter = {"pages": 0}

    def counted(rows):
        for row in rows:
            counter["pages"] += 1
            yield row
        if counter["pages"] == 0:  # raised while writing: no empty submission, and an older file stays
            raise DataError(f"予測できるページが入力に 1 件もありませんでした (入力の警告を見てください)。"
                            f"{output_path} は書いていません")

    if output_format == "shinra":
        rows = ((r.page_id, r.title, scored) for r, scored in stream)
        write_shinra_submission(output_path, counted(rows), system=system, yyyymm=yyyymm)
    else:
        rows = (answer_row(r.page_id, scored) for r, scored in stream)
        write_json_lines(output_path, counted(rows))
    print(f"{counter['pages']} ページの予測を {output_path} に書きました ({output_format} 形式)", file=sys.stderr)
    return {"pages": counter["pages"], "output": str(output_path), "format": output_format}
