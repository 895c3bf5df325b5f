"""Records -> token ids (title as the first segment, body as the second), cached."""
from __future__ import annotations

import hashlib
import math
import os
import pickle
import warnings
from pathlib import Path

import torch

from .tokenization import build_features

# Tokenizer processes for a whole data set: one per core, at most 8.
WORKERS = min(8, os.cpu_count() or 1)
MIN_WINDOW_LENGTH = 4  # windows > 1: "[CLS] title [SEP] chunk [SEP]", and a chunk needs a token


def encode_records(tokenizer, records, max_length: int, cache_dir: Path | None = None, workers: int = 1,
                   windows: int = 1, pool=None):
    """Token ids and segment ids for each record, without padding
    (with `workers` tokenizer processes, or those of `pool`: Tokenizer.worker_pool).

    windows > 1: a text too long for one sequence is read in up to `windows`
    chunks, each an example "[CLS] title [SEP] chunk [SEP]". "record" gives the
    record of each example (with windows=1, example i is record i).

    With `cache_dir`, the result is kept in a file named after a hash of the
    texts, the vocabulary, max_length and windows, so a second run skips tokenization.
    """
    if windows > 1 and max_length < MIN_WINDOW_LENGTH:
        raise ValueError(f"長いページを区間に分けて読む (windows={windows}) には max_length が "
                         f"{MIN_WINDOW_LENGTH} 以上必要です ({max_length} が指定されました)")
    titles = [r.title for r in records]
    texts = [r.text for r in records]
    cache = None
    if cache_dir is not None:
        cache = Path(cache_dir) / f"ids-{encoding_key(tokenizer, titles, texts, f'{max_length}/{windows}')}.pt"
        cached = load_cached_ids(cache) if cache.exists() else None
        if cached is not None:
            return cached
    if windows > 1:
        ids = tokenizer.ids_of_texts(titles + texts, workers, pool=pool)
        result = window_features(ids[:len(titles)], ids[len(titles):], max_length, windows)
    else:
        encoded = tokenizer.encode_batch(titles, texts, max_length=max_length, padding=False, workers=workers,
                                         pool=pool)
        result = {"input_ids": encoded["input_ids"], "token_type_ids": encoded["token_type_ids"],
                  "record": list(range(len(records)))}
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{os.getpid()}.tmp")  # torchrun: several writers
        torch.save(result, tmp)
        tmp.replace(cache)
    return result


def load_cached_ids(cache: Path) -> dict | None:
    """The ids kept in `cache`, or None (with a warning) when the file is damaged, as
    by a copy cut short: it is only a cache, so the texts are then tokenized again."""
    try:
        cached = torch.load(cache, weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError):
        cached = None
    if isinstance(cached, dict) and set(cached) == {"input_ids", "token_type_ids", "record"}:
        return cached
    warnings.warn(f"{cache}: トークン ID のキャッシュが壊れていて読めません。トークン化し直します")
    return None


def window_starts(n_tokens: int, body: int, windows: int) -> list[int]:
    """Where each chunk of a text starts. A text that fits takes one window; a
    longer one takes up to `windows` full chunks, spread evenly from its start
    to its end (overlapping when the text is shorter than `windows` chunks)."""
    n = min(windows, math.ceil(n_tokens / body)) if n_tokens > body else 1
    if n == 1:
        return [0]
    return [round(k * (n_tokens - body) / (n - 1)) for k in range(n)]


def window_features(title_ids, text_ids, max_length: int, windows: int) -> dict:
    """Examples "[CLS] title [SEP] chunk [SEP]" for each record's chunks of text.
    The title (cut to half the length at most) is repeated in every window."""
    out = {"input_ids": [], "token_type_ids": [], "record": []}
    for record, (title, text) in enumerate(zip(title_ids, text_ids)):
        title = title[:(max_length - 3) // 2]
        body = max_length - 3 - len(title)
        for start in window_starts(len(text), body, windows):
            features = build_features(title, text[start:start + body], max_length)
            out["input_ids"].append(features["input_ids"])
            out["token_type_ids"].append(features["token_type_ids"])
            out["record"].append(record)
    return out


def encoding_key(tokenizer, titles, texts, lengths: str) -> str:
    h = hashlib.sha1(f"{lengths}\n".encode())
    h.update("\n".join(tokenizer.id_to_token).encode())
    for title, text in zip(titles, texts):
        h.update(title.encode())
        h.update(b"\0")
        h.update(text.encode())
        h.update(b"\1")
    return h.hexdigest()[:16]
