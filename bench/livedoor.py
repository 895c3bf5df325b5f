"""Dev micro-F1 on livedoor news: a TF-IDF baseline against our pre-train + fine-tune.

Splits the shared 5,857 articles 80/20 (fixed seed), then
  (a) char n-gram TF-IDF + logistic regression (scikit-learn),
  (b) `pretrain` on the training texts only, then `train` (our pipeline).
Prints one JSON object (and writes it to --json). Examples:
    python bench/livedoor.py --pretrain-minutes 8 --size mini --epochs 4       # CPU, ~15 min
    python bench/livedoor.py --device cuda --size base --pretrain-minutes 12 \
        --pretrain-max-length 512 --max-length 512 --lrs 1e-4,5e-5,2e-4     # one GPU

With several --lrs, fine-tuning runs once per learning rate (in the order
given, none started after --deadline-minutes) and every result is reported;
"ours" is the best of them by dev micro-F1. With TF-IDF in the same run, "ours_vs_tfidf"
compares the two page by page; --compare does it for the dev answers of an earlier run:
    python bench/livedoor.py --skip-bert --compare runs/.../finetuned-lr0.0001/dev_predictions.jsonl
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)  # the project root, not bench/ (a script there could shadow a module)

import torch  # noqa: E402

from solutions.data import DataError, read_livedoor, split_train_dev  # noqa: E402
from solutions.data.records import get_labels, get_string, iter_lines, parse_json_object  # noqa: E402
from solutions.finetune import FinetuneSettings, finetune  # noqa: E402
from solutions.training import read_log  # noqa: E402
from solutions.pretrain import PretrainSettings, page_texts, pretrain  # noqa: E402

DEFAULT_ARCHIVE = ROOT.parent / "shared" / "data" / "livedoor" / "ldcc-20140209-train80.tar.gz"


def tfidf_baseline(train, dev, window_chars: int | None = None, windows: int = 1) -> tuple[dict, list[str]]:
    """Char n-gram TF-IDF + logistic regression on whole articles, or (window_chars)
    on up to `windows` windows of that many characters, each a training example,
    with the windows' probabilities averaged for a dev article: what BERT reads.
    Returns the scores and the answer for each dev article."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    from solutions.encoding import window_starts

    def pieces(r):
        if window_chars is None:
            return [r.title + "\n" + r.text]
        return [r.title + "\n" + r.text[s:s + window_chars] for s in window_starts(len(r.text), window_chars, windows)]

    start = time.time()
    texts, labels = zip(*[(piece, r.labels[0]) for r in train for piece in pieces(r)])
    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), min_df=2, sublinear_tf=True,
                                 max_features=300_000)
    classifier = LogisticRegression(C=20, max_iter=2000).fit(vectorizer.fit_transform(texts), labels)
    predicted = [classifier.classes_[classifier.predict_proba(vectorizer.transform(pieces(r))).mean(0).argmax()]
                 for r in dev]
    f1 = 100 * f1_score([r.labels[0] for r in dev], predicted, average="micro")
    summary = {"dev_micro_f1": round(f1, 2), "seconds": round(time.time() - start, 1), **per_label(dev, predicted)}
    return summary, predicted


def per_label(dev, predicted: list[str]) -> dict:
    """F1 of each category and the confusion matrix (rows: true category, columns: predicted)."""
    from sklearn.metrics import confusion_matrix, f1_score

    gold = [r.labels[0] for r in dev]
    labels = sorted(set(gold))
    scores = f1_score(gold, predicted, labels=labels, average=None)
    return {"f1_by_label": {label: round(100 * x, 2) for label, x in zip(labels, scores)},
            "confusion": {"labels": labels, "rows_true_columns_predicted":
                          confusion_matrix(gold, predicted, labels=labels).tolist()}}


def answers(path, dev=None) -> list[str]:
    """The single label of each page in a `train` run's dev_predictions.jsonl ("" for none),
    in the file's order, or in the order of `dev` (which must hold the same pages)."""
    rows = []
    for number, line in iter_lines(path):  # the project's JSONL checks: errors name file, line and field
        if line.strip():
            row = parse_json_object(line, path, number)
            labels = get_labels(row, path, number, required=False)
            rows.append((get_string(row, "page_id", path, number), labels[0] if labels else ""))
    if dev is None:
        return [label for _, label in rows]
    by_page = dict(rows)
    missing = [r.page_id for r in dev if r.page_id not in by_page]
    if missing or len(by_page) != len(dev):
        raise DataError(f"dev の {len(dev)} 記事と予測の {len(by_page)} ページが一致しません "
                        f"(予測のない記事 {len(missing)} 件、例: {missing[:3]})", path=path)
    return [by_page[r.page_id] for r in dev]


def paired_comparison(gold: list[str], ours: list[str], theirs: list[str], rounds: int = 5000, seed: int = 0) -> dict:
    """Two classifiers' answers on the same dev pages: each one's micro-F1 (= accuracy, one
    answer per page), the pages only one of them gets right, McNemar's exact test on
    those, and a paired bootstrap 95% interval of the difference (pages drawn with replacement)."""
    import numpy as np
    from scipy.stats import binomtest
    from sklearn.metrics import f1_score

    right_ours = np.asarray(ours) == np.asarray(gold)
    right_theirs = np.asarray(theirs) == np.asarray(gold)
    only_ours = int((right_ours & ~right_theirs).sum())
    only_theirs = int((~right_ours & right_theirs).sum())
    draws = np.random.default_rng(seed).integers(0, len(gold), size=(rounds, len(gold)))
    differences = 100 * (right_ours[draws].mean(1) - right_theirs[draws].mean(1))
    low, high = np.percentile(differences, [2.5, 97.5])
    f1_ours, f1_theirs = (100 * f1_score(gold, given, average="micro") for given in (ours, theirs))
    return {"pages": len(gold), "ours": round(f1_ours, 2), "theirs": round(f1_theirs, 2),
            "difference": round(f1_ours - f1_theirs, 2),
            "only_ours_right": only_ours, "only_theirs_right": only_theirs,
            "mcnemar_exact_p": round(binomtest(only_ours, only_ours + only_theirs).pvalue, 4)
            if only_ours + only_theirs else 1.0,
            "bootstrap_95": [round(float(low), 2), round(float(high), 2)],
            "bootstrap_share_ours_better": round(float((differences > 0).mean()), 3)}


def unigram_reference(train, vocab_size: int) -> dict:
    """The two reference lines of an MLM learning curve for this split's vocabulary
    (the one `pretrain` trains): guessing blind, and guessing by token frequency."""
    import math

    from solutions.encoding import WORKERS
    from solutions.pretrain import document_token_ids, joined, pack_sequences, unigram_loss
    from solutions.tokenization import Tokenizer, train_vocab

    texts = page_texts(train)
    tokenizer = Tokenizer(train_vocab(joined(texts), vocab_size))
    blocks = pack_sequences(document_token_ids(tokenizer, texts, WORKERS), tokenizer, 512)
    return {"vocab_size": tokenizer.vocab_size, "log_vocab_size": round(math.log(tokenizer.vocab_size), 4),
            "unigram_loss": round(unigram_loss(blocks), 4), "tokens": blocks.numel()}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--archive", default=str(DEFAULT_ARCHIVE))
    p.add_argument("--out", default="runs/bench-livedoor")
    p.add_argument("--json", help="also write the result to this file")
    p.add_argument("--size", default="mini")
    p.add_argument("--vocab-size", type=int, default=16000)
    p.add_argument("--pretrain-minutes", type=float, default=8.0)
    p.add_argument("--pretrain-max-length", type=int, default=128)
    p.add_argument("--pretrain-batch-size", type=int, default=64)
    p.add_argument("--pretrain-lr", type=float, default=1e-3)
    p.add_argument("--pretrain-warmup", type=float, default=0.06, help="warm-up share of the steps")
    p.add_argument("--mask-prob", type=float, default=0.15, help="MLM masking share")
    p.add_argument("--whole-word-mask", action="store_true", help="mask the pieces of a word together")
    p.add_argument("--pretrain-short-length", type=int, help="first pre-train on blocks this long")
    p.add_argument("--pretrain-short-share", type=float, default=0.9, help="share of the budget on short blocks")
    p.add_argument("--copy-positions", action="store_true",
                   help="longer blocks start their untrained positions as copies of the trained ones")
    p.add_argument("--shuffle-documents", action=argparse.BooleanOptionalAction, default=True,
                   help="every pass over the text packs the documents in a new order")
    p.add_argument("--compile", action="store_true", help="compile_layers for pre-training")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--windows", type=int, default=1, help="fine-tune and evaluate on up to N windows per article")
    p.add_argument("--lrs", help="comma-separated fine-tuning learning rates (overrides --lr)")
    p.add_argument("--deadline-minutes", type=float, help="start no fine-tuning after this many minutes")
    p.add_argument("--device", default="auto")
    p.add_argument("--limit", type=int, help="use only N articles, spread over the categories (smoke test)")
    p.add_argument("--skip-bert", action="store_true")
    p.add_argument("--skip-tfidf", action="store_true")
    p.add_argument("--unigram", action="store_true",
                   help="also the MLM loss of guessing by token frequency, under --vocab-size (no GPU needed)")
    p.add_argument("--compare", metavar="DEV_PREDICTIONS",
                   help="a dev_predictions.jsonl of an earlier run on this split (e.g. on a GPU): compare it with "
                        "TF-IDF, page by page (McNemar, paired bootstrap)")
    p.add_argument("--tfidf-window-chars", type=int,
                   help="also TF-IDF on windows of this many characters (about 820 = 490 tokens), --windows of them")
    return p


def main(argv=None):
    p = parser()
    args = p.parse_args(argv)
    if args.compare and args.skip_tfidf:
        p.error("--compare は TF-IDF と比べます: --skip-tfidf とは一緒に使えません")
    started = time.time()

    def write(result):  # after each stage: a run cut short keeps what it finished
        result["seconds"] = round(time.time() - started, 1)
        if args.json:
            Path(args.json).write_text(json.dumps(result, ensure_ascii=False) + "\n", encoding="utf-8")

    records = read_livedoor(args.archive)
    if args.limit:  # every k-th article: the archive is sorted by category, and each one stays in
        records = records[:: max(1, len(records) // args.limit)][: args.limit]
    train, dev = split_train_dev(records, dev_fraction=0.2, seed=0)
    result = {"articles": len(records), "train": len(train), "dev": len(dev),
              "machine": f"{platform.machine()} {os.cpu_count()} cores",
              "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
              "torch": torch.__version__}
    gold = [r.labels[0] for r in dev]
    tfidf_answers = None
    if not args.skip_tfidf:
        result["tfidf_logreg"], tfidf_answers = tfidf_baseline(train, dev)
        if args.tfidf_window_chars:
            windowed, _ = tfidf_baseline(train, dev, args.tfidf_window_chars, args.windows)
            result["tfidf_logreg_windows"] = {"window_chars": args.tfidf_window_chars, "windows": args.windows,
                                              **windowed}
        if args.compare:
            result["compared_vs_tfidf"] = {"predictions": args.compare, **paired_comparison(
                gold, answers(args.compare, dev), tfidf_answers)}
    if args.unigram:
        result["unigram"] = unigram_reference(train, args.vocab_size)
    if not args.skip_bert:
        out = Path(args.out)
        pre = pretrain(page_texts(train), out / "pretrained",
                       PretrainSettings(size=args.size, vocab_size=args.vocab_size,
                                        max_length=args.pretrain_max_length,
                                        batch_size=args.pretrain_batch_size, lr=args.pretrain_lr,
                                        warmup_ratio=args.pretrain_warmup, max_steps=10**7,
                                        minutes=args.pretrain_minutes, mask_prob=args.mask_prob,
                                        whole_word_mask=args.whole_word_mask,
                                        short_length=args.pretrain_short_length,
                                        short_share=args.pretrain_short_share,
                                        copy_positions=args.copy_positions,
                                        shuffle_documents=args.shuffle_documents,
                                        device=args.device, compile=args.compile),
                       dev_texts=page_texts(dev))
        result["pretrain"] = {"size": args.size, "seconds": pre["seconds"], "steps": pre["steps"],
                              "final_loss": round(pre["final_loss"], 3),
                              "unigram_loss": round(pre["unigram_loss"], 3), "dev_loss": round(pre["dev_loss"], 3),
                              "dev_accuracy": round(pre["dev_accuracy"], 4), "vocab_size": pre["vocab_size"],
                              "blocks": pre["blocks"], "tokens_per_block": pre["tokens_per_block"],
                              "phases": pre["phases"], "mask_prob": args.mask_prob,
                              "whole_word_mask": args.whole_word_mask, "copy_positions": args.copy_positions,
                              "shuffle_documents": args.shuffle_documents,
                              "lr": args.pretrain_lr,
                              "learning_curve": str(out / "pretrained" / "learning_curve.png")}
        result["sweep"] = []
        dev_answers = {}  # lr -> the best epoch's answer for each dev article
        write(result)
        for lr in [float(x) for x in args.lrs.split(",")] if args.lrs else [args.lr]:
            if result["sweep"] and args.deadline_minutes and time.time() - started > 60 * args.deadline_minutes:
                result["sweep"].append({"lr": lr, "skipped": "deadline"})
                continue
            fine = finetune(train, dev, out / "pretrained", out / f"finetuned-lr{lr:g}",
                            FinetuneSettings(epochs=args.epochs, lr=lr, max_length=args.max_length,
                                             multi_label=False, device=args.device, keep_state=False,
                                             windows=args.windows))
            dev_answers[lr] = answers(fine["dev_predictions"], dev)
            curve = [e["dev_micro_f1"] for e in read_log(out / f"finetuned-lr{lr:g}" / "metrics.jsonl")
                     if "dev_micro_f1" in e]
            result["sweep"].append({"lr": lr, "dev_micro_f1": round(fine["best"]["dev_micro_f1"], 2),
                                    "best_epoch": fine["best"]["epoch"], "dev_f1_by_epoch": [round(f, 2) for f in curve],
                                    "seconds": fine["seconds"],
                                    "learning_curve": str(out / f"finetuned-lr{lr:g}" / "learning_curve.png"),
                                    **per_label(dev, dev_answers[lr])})
            print(json.dumps(result["sweep"][-1]), file=sys.stderr, flush=True)
            write(result)
        best = max((r for r in result["sweep"] if "dev_micro_f1" in r), key=lambda r: r["dev_micro_f1"])
        result["ours"] = {**best, "size": args.size, "windows": args.windows}
        if tfidf_answers is not None:
            result["ours_vs_tfidf"] = paired_comparison(gold, dev_answers[best["lr"]], tfidf_answers)
    write(result)
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    try:
        main()
    except DataError as error:
        sys.exit(f"エラー: {error}")
