"""Dev micro-F1 on livedoor news: a TF-IDF baseline against our pre-train + fine-tune.

Splits the shared 5,857 articles 80/20 (fixed seed), then
  (a) char n-gram TF-IDF + logistic regression (scikit-learn),
  (b) `pretrain` on the training texts only, then `train` (our pipeline).
Prints one JSON object. Example (CPU, ~15 min):
    python bench/livedoor.py --pretrain-minutes 8 --size mini --epochs 4
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
sys.path[0] = str(ROOT)  # not bench/: bench/tokenize.py would shadow the standard library

import torch  # noqa: E402

from solutions.data import read_livedoor, split_train_dev  # noqa: E402
from solutions.finetune import FinetuneSettings, finetune  # noqa: E402
from solutions.pretrain import PretrainSettings, pretrain  # noqa: E402

DEFAULT_ARCHIVE = ROOT.parent / "shared" / "data" / "livedoor" / "ldcc-20140209-train80.tar.gz"


def tfidf_baseline(train, dev) -> dict:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    start = time.time()
    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), min_df=2, sublinear_tf=True,
                                 max_features=300_000)
    x_train = vectorizer.fit_transform([r.title + "\n" + r.text for r in train])
    x_dev = vectorizer.transform([r.title + "\n" + r.text for r in dev])
    classifier = LogisticRegression(C=20, max_iter=2000)
    classifier.fit(x_train, [r.labels[0] for r in train])
    predicted = classifier.predict(x_dev)
    f1 = 100 * f1_score([r.labels[0] for r in dev], predicted, average="micro")
    return {"dev_micro_f1": round(f1, 2), "seconds": round(time.time() - start, 1)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--archive", default=str(DEFAULT_ARCHIVE))
    p.add_argument("--out", default="runs/bench-livedoor")
    p.add_argument("--size", default="mini")
    p.add_argument("--vocab-size", type=int, default=16000)
    p.add_argument("--pretrain-minutes", type=float, default=8.0)
    p.add_argument("--pretrain-max-length", type=int, default=128)
    p.add_argument("--pretrain-batch-size", type=int, default=64)
    p.add_argument("--pretrain-lr", type=float, default=1e-3)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--device", default="auto")
    p.add_argument("--limit", type=int, help="use only the first N articles (smoke test)")
    p.add_argument("--skip-bert", action="store_true")
    args = p.parse_args(argv)

    records = read_livedoor(args.archive)[: args.limit]
    train, dev = split_train_dev(records, dev_fraction=0.2, seed=0)
    result = {"articles": len(records), "train": len(train), "dev": len(dev),
              "machine": f"{platform.machine()} {os.cpu_count()} cores",
              "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
              "tfidf_logreg": tfidf_baseline(train, dev)}
    if not args.skip_bert:
        out = Path(args.out)
        pre = pretrain([r.title + "\n" + r.text for r in train], out / "pretrained",
                       PretrainSettings(size=args.size, vocab_size=args.vocab_size,
                                        max_length=args.pretrain_max_length,
                                        batch_size=args.pretrain_batch_size, lr=args.pretrain_lr,
                                        max_steps=10**7, minutes=args.pretrain_minutes, device=args.device))
        fine = finetune(train, dev, out / "pretrained", out / "finetuned",
                        FinetuneSettings(epochs=args.epochs, lr=args.lr, max_length=args.max_length,
                                         multi_label=False, device=args.device))
        result["ours"] = {"dev_micro_f1": round(fine["best"]["dev_micro_f1"], 2),
                          "best_epoch": fine["best"]["epoch"], "size": args.size,
                          "pretrain_seconds": pre["seconds"], "pretrain_steps": pre["steps"],
                          "pretrain_final_loss": round(pre["final_loss"], 3),
                          "finetune_seconds": fine["seconds"],
                          "learning_curve": str(out / "finetuned" / "learning_curve.png")}
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
