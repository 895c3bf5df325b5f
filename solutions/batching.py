"""Batches of similar length, padded only as far as their longest member."""
from __future__ import annotations

import math
import random

import torch


def length_bucketed_batches(lengths, batch_size: int, *, shuffle: bool = True, seed: int = 0,
                            bucket_factor: int = 50) -> list[list[int]]:
    """Group example indices into batches of similar length.

    Shuffle, cut into buckets of `bucket_factor` batches, sort each bucket by
    length, cut it into batches, then shuffle the batch order. Padding stays
    small while every epoch still sees a different order.
    """
    order = list(range(len(lengths)))
    rng = random.Random(seed)
    if shuffle:
        rng.shuffle(order)
    bucket = batch_size * bucket_factor
    batches = []
    for start in range(0, len(order), bucket):
        chunk = sorted(order[start:start + bucket], key=lambda i: lengths[i])
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    if shuffle:
        rng.shuffle(batches)
    return batches


def sorted_batches(lengths, batch_size: int) -> list[list[int]]:
    """Longest first, for prediction: the least padding, and memory peaks early."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def padded_length(longest: int, multiple: int = 1, limit: int | None = None) -> int:
    """`longest` rounded up to a multiple of `multiple`, but not past `limit`
    (CUDA graphs record one graph per shape: fewer lengths, fewer graphs)."""
    width = math.ceil(longest / multiple) * multiple
    if limit is not None:
        width = max(longest, min(width, limit))  # never past limit, never cutting a sequence
    return width


def pad_batch(sequences: list[list[int]], pad_id: int = 0, segments: list[list[int]] | None = None,
              multiple: int = 1, limit: int | None = None):
    """Pad token id lists to the longest one, rounded up as padded_length does.
    Returns the model's keyword arguments."""
    width = padded_length(max(len(s) for s in sequences), multiple, limit)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
    token_type_ids = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, ids in enumerate(sequences):
        input_ids[row, :len(ids)] = torch.tensor(ids)
        attention_mask[row, :len(ids)] = 1
        if segments is not None:
            token_type_ids[row, :len(ids)] = torch.tensor(segments[row])
    return {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
