"""Records -> token ids (title as the first segment, body as the second), cached."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

# Tokenizer processes for a whole data set: one per core, at most 8.
WORKERS = min(8, os.cpu_count() or 1)


def encode_records(tokenizer, records, max_length: int, cache_dir: Path | None = None, workers: int = 1):
    """Token ids and segment ids for each record, without padding
    (with `workers` tokenizer processes).

    With `cache_dir`, the result is kept in a file named after a hash of the
    texts, the vocabulary and max_length, so a second run skips tokenization.
    """
    titles = [r.title for r in records]
    texts = [r.text for r in records]
    cache = None
    if cache_dir is not None:
        cache = Path(cache_dir) / f"ids-{encoding_key(tokenizer, titles, texts, max_length)}.pt"
        if cache.exists():
            return torch.load(cache, weights_only=True)
    encoded = tokenizer.encode_batch(titles, texts, max_length=max_length, padding=False, workers=workers)
    result = {"input_ids": encoded["input_ids"], "token_type_ids": encoded["token_type_ids"]}
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{os.getpid()}.tmp")  # torchrun: several writers
        torch.save(result, tmp)
        tmp.replace(cache)
    return result


def encoding_key(tokenizer, titles, texts, max_length: int) -> str:
    h = hashlib.sha1(f"{max_length}\n".encode())
    h.update("\n".join(tokenizer.id_to_token).encode())
    for title, text in zip(titles, texts):
        h.update(title.encode())
        h.update(b"\0")
        h.update(text.encode())
        h.update(b"\1")
    return h.hexdigest()[:16]
