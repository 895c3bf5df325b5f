"""Benchmark the leaderboard scorer on generated SHINRA-form files.

    python bench/score.py                 # 1,000,000 pages
    python bench/score.py --pages 2000    # a quick smoke run

Writes gold and submission files into a temporary directory, times
``score_files`` on them and prints one JSON object: wall and CPU seconds (on a
busy machine the CPU seconds say more), and the load average while it ran.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autograder.leaderboard import score_files  # noqa: E402
from autograder.leaderboard.board import split_function  # noqa: E402
from solutions import ene  # noqa: E402

SYSTEM_KEY = "AUTO.Bench.202207"
GOLD_KEY = "HAND.AIP.202204"


def _label_sampler(rng: random.Random):
    labels = sorted(ene.leaves(), key=ene.sort_key)
    weights = [1.0 / (rank + 1) for rank in range(len(labels))]  # Zipf-like
    rng.shuffle(labels)
    return lambda k: rng.choices(labels, weights, k=k)


def _entries(labels, probs) -> str:
    return "[" + ", ".join(f'{{"prob": {p}, "ENE": "{x}"}}' for x, p in zip(labels, probs)) + "]"


def _line(pid: str, key: str, entries: str) -> str:
    return f'{{"page_id": "{pid}", "title": "ページ{pid}", "ENEs": {{"{key}": {entries}}}}}\n'


def generate(directory: Path, pages: int, seed: int) -> tuple[Path, Path]:
    """Gold (≈3% multi-label) and a submission (≈85% right, ≈1% of pages missing)."""
    rng = random.Random(seed)
    sample = _label_sampler(rng)
    gold_path, sub_path = directory / "gold.jsonl", directory / "submission.jsonl"
    gold_lines, sub_lines = [], []
    for i in range(pages):
        pid = str(1000 + i)
        labels = sample(2 if rng.random() < 0.03 else 1)
        gold_lines.append(_line(pid, GOLD_KEY, _entries(labels, [1] * len(labels))))
        if rng.random() < 0.01:
            continue
        predicted = labels[:1] if rng.random() < 0.85 else sample(1)
        probs = [round(rng.random(), 4) for _ in predicted]
        sub_lines.append(_line(pid, SYSTEM_KEY, _entries(predicted, probs)))
    rng.shuffle(sub_lines)
    gold_path.write_text("".join(gold_lines), encoding="utf-8")
    sub_path.write_text("".join(sub_lines), encoding="utf-8")
    return gold_path, sub_path


def _timed(fn):
    """(result, wall seconds, CPU seconds of this process)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="リーダーボード採点器のベンチマーク (結果は JSON)")
    parser.add_argument("--pages", type=int, default=1_000_000, help="ページ数 (既定: 1,000,000)")
    parser.add_argument("--seed", type=int, default=0, help="乱数の種")
    parser.add_argument("--split", action="store_true",
                        help="public/private に分けて採点する時間も測る (submit と同じ処理)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-score-") as tmp:
        (gold, sub), gen_s, _ = _timed(lambda: generate(Path(tmp), args.pages, args.seed))
        report, score_s, score_cpu_s = _timed(lambda: score_files(gold, sub))
        result = {
            "pages": report.pages, "missing_pages": report.missing_pages,
            "gold_mb": round(gold.stat().st_size / 2**20, 1),
            "submission_mb": round(sub.stat().st_size / 2**20, 1),
            "generate_s": round(gen_s, 2), "score_s": round(score_s, 2),
            "score_cpu_s": round(score_cpu_s, 2),
            "pages_per_s": round(report.pages / score_s),
            "micro_f1": round(report.f1, 4),
        }
        if args.split:
            part = split_function("bench", 0.5)
            _, split_s, split_cpu_s = _timed(lambda: score_files(gold, sub, partition=part))
            result.update(score_with_split_s=round(split_s, 2),
                          score_with_split_cpu_s=round(split_cpu_s, 2))
    result.update(load_average_1min=round(os.getloadavg()[0], 2))
    result.update(
        max_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        python=platform.python_version(), cpus=os.cpu_count())
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
