"""Micro-averaged precision, recall and F1 over (page, label) pairs."""
from __future__ import annotations


def micro_counts(gold: list[set], predicted: list[set]) -> tuple[int, int, int]:
    """True positives, number predicted, number gold, summed over all pages."""
    tp = sum(len(g & p) for g, p in zip(gold, predicted, strict=True))
    return tp, sum(len(p) for p in predicted), sum(len(g) for g in gold)


def f1_from_counts(tp: int, n_predicted: int, n_gold: int) -> dict:
    """F1 = 2·TP / (predicted + gold); reported ×100 like the SHINRA leaderboard."""
    precision = 100.0 * tp / n_predicted if n_predicted else 0.0
    recall = 100.0 * tp / n_gold if n_gold else 0.0
    f1 = 100.0 * 2 * tp / (n_predicted + n_gold) if n_predicted + n_gold else 0.0
    return {"micro_f1": f1, "precision": precision, "recall": recall}


def micro_f1(gold: list[set], predicted: list[set]) -> dict:
    return f1_from_counts(*micro_counts(gold, predicted))
