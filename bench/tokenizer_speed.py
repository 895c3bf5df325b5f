"""Texts per second: our Tokenizer.encode_batch against transformers' BertJapaneseTokenizer.

    python bench/tokenizer_speed.py [--limit N] [--max-length 512] [--workers 2] [--repeat 3]
                                    [--text first|whole]

Each text is a livedoor news article's title and first paragraph (--text whole:
its title and whole body, which a model reads only up to max_length tokens),
read from ../shared/data/livedoor/ldcc-20140209-train80.tar.gz. The vocabulary is trained
on the same articles (nothing is downloaded). Both tokenizers must give the same
ids; the script prints one JSON object and exits with 1 if they do not.
"""
import os
import sys

# This file shares its name with the standard library's `tokenize`, which
# `inspect` and `linecache` import: keep this directory off sys.path.
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:] = [ROOT] + [p for p in sys.path if os.path.abspath(p or ".") != HERE]

import argparse  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from solutions.data import first_paragraph, read_livedoor  # noqa: E402
from solutions.tokenization import Tokenizer, build_features, collate, gc_paused, train_vocab  # noqa: E402

CORPUS = Path("livedoor") / "ldcc-20140209-train80.tar.gz"


def read_articles(path: Path, limit: int | None) -> list[tuple[str, str, str]]:
    """(title, first paragraph, body) of `limit` articles spread over all categories."""
    articles = [(r.title, first_paragraph(r.text), r.text) for r in read_livedoor(path)]
    if limit:
        articles = articles[::max(1, len(articles) // limit)][:limit]
    return articles


def best_times(runs: dict, repeat: int):
    """Each run `repeat` times, taking turns (so that other work on the machine
    slows them alike): the fastest wall-clock and CPU seconds of each, and a result."""
    times = {name: (float("inf"), float("inf")) for name in runs}
    results = {}
    for _ in range(repeat):
        for name, run in runs.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            results[name] = run()
            wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
            times[name] = (min(times[name][0], wall), min(times[name][1], cpu))
    return times, results


def rates(times, n_texts: int, n_tokens: int, with_cpu: bool = True) -> dict:
    """Throughput by the clock; by CPU time too for single-process runs, which
    other programs on the machine slow down much less."""
    wall, cpu = times
    report = {"seconds": round(wall, 3), "texts_per_s": round(n_texts / wall, 1),
              "tokens_per_s": round(n_tokens / wall)}
    if with_cpu:
        report.update(cpu_seconds=round(cpu, 3), texts_per_cpu_s=round(n_texts / cpu, 1))
    return report


def same_ids(ours: dict, theirs) -> bool:
    return all(ours[key] == theirs[key] for key in ("input_ids", "token_type_ids", "attention_mask"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="number of articles (default: all)")
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--workers", type=int, default=2, help="processes for the second run of ours")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--text", choices=["first", "whole"], default="first",
                        help="title + first paragraph, or title + the whole article")
    parser.add_argument("--vocab-size", type=int, default=32768)
    parser.add_argument("--data", type=Path, default=Path(ROOT).parent / "shared" / "data")
    args = parser.parse_args(argv)

    path = args.data / CORPUS
    if not path.exists():
        sys.exit(f"{path} がありません")
    articles = read_articles(path, args.limit)
    texts = [title + "\n" + (body if args.text == "whole" else paragraph) for title, paragraph, body in articles]
    vocab = train_vocab([body for _, _, body in articles], args.vocab_size)

    import transformers

    transformers.logging.set_verbosity_error()
    with tempfile.TemporaryDirectory() as vocab_dir:
        Tokenizer(vocab).save(vocab_dir)
        theirs = transformers.AutoTokenizer.from_pretrained(vocab_dir)
    settings = {"max_length": args.max_length, "padding": "longest"}

    def run_transformers():
        return theirs(texts, truncation=True, return_token_type_ids=True, **settings)

    def run_ours(workers):
        return lambda: Tokenizer(vocab).encode_batch(texts, workers=workers, **settings)

    def run_ours_whole_texts():  # ours without Tokenizer.leading_ids: MeCab reads every text to its end
        with gc_paused():  # as in encode_batch
            all_ids = Tokenizer(vocab).ids_of_texts(texts, workers=1)
            return collate([build_features(ids, None, args.max_length) for ids in all_ids], "longest", args.max_length)

    run_transformers(), run_ours(1)()  # load both MeCab dictionaries before timing
    times, results = best_times(
        {"theirs": run_transformers, "one": run_ours(1), "many": run_ours(args.workers),
         "whole": run_ours_whole_texts}, args.repeat)
    t_theirs, t_one, t_many = times["theirs"], times["one"], times["many"]
    expected, got_one, got_many = results["theirs"], results["one"], results["many"]

    n_tokens = sum(map(sum, got_one["attention_mask"]))
    report = {
        "texts": len(texts),
        "text": "title + whole article" if args.text == "whole" else "title + first paragraph",
        "avg_chars": round(sum(map(len, texts)) / max(len(texts), 1), 1),
        "max_length": args.max_length,
        "vocab_size": len(vocab),
        "cpu_count": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),  # other work slows every figure
        "transformers": rates(t_theirs, len(texts), n_tokens),
        "ours_1_worker": rates(t_one, len(texts), n_tokens),
        f"ours_{args.workers}_workers": rates(t_many, len(texts), n_tokens, with_cpu=False),
        "ours_1_worker_whole_texts": rates(times["whole"], len(texts), n_tokens),
        "speedup_1_worker": round(t_theirs[0] / t_one[0], 2),
        "speedup_of_leading_ids_cpu": round(times["whole"][1] / t_one[1], 2),  # reading only what max_length needs
        "speedup_1_worker_cpu": round(t_theirs[1] / t_one[1], 2),
        f"speedup_{args.workers}_workers": round(t_theirs[0] / t_many[0], 2),
        "ids_equal": all(same_ids(got, expected) for got in (got_one, got_many, results["whole"])),
    }
    print(json.dumps(report, ensure_ascii=False, indent=2))
    return 0 if report["ids_equal"] else 1


if __name__ == "__main__":
    sys.exit(main())
