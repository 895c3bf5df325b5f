"""Our BERT classifier against transformers' on the same device: training and
prediction throughput, peak memory and achieved TFLOP/s. Prints JSON lines.

    python bench/gpu.py                   # on a GPU: bert-base-japanese-v3 sizes
    python bench/gpu.py --device cpu      # tiny sizes, a smoke test (no timing claims)

Real lengths come from the livedoor articles in ../shared/data, tokenized here
with our tokenizer (--lengths FILE reuses lengths saved by --save-lengths, for
a machine without MeCab). Throughput depends on the lengths, not on the ids,
so the batches hold random ids of those lengths.
"""
from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [os.path.dirname(HERE)] + [p for p in sys.path if os.path.abspath(p or ".") != HERE]

import argparse  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
import transformers  # noqa: E402

from solutions.batching import length_bucketed_batches, pad_batch  # noqa: E402
from solutions.config import BertConfig  # noqa: E402
from solutions.models import BertForSequenceClassification  # noqa: E402
from solutions.training import autocast, make_optimizer  # noqa: E402

BASE = dict(vocab_size=32768, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
            intermediate_size=3072, max_position_embeddings=512)
TINY = dict(vocab_size=2000, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=256, max_position_embeddings=512)
BF16_PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L4": 121.0}
LIVEDOOR = Path(HERE).parent.parent / "shared" / "data" / "livedoor" / "ldcc-20140209-train80.tar.gz"


def emit(**record):
    print(json.dumps(record, ensure_ascii=False), flush=True)


def build(kind: str, sizes: dict, n_labels: int, device):
    """'ours' or 'hf-eager' / 'hf-sdpa'; the same initial weights are not needed for speed."""
    torch.manual_seed(0)
    if kind == "ours":
        model = BertForSequenceClassification(BertConfig(**sizes, labels=[str(i) for i in range(n_labels)]))
    else:
        cfg = transformers.BertConfig(**sizes, num_labels=n_labels)
        model = transformers.BertForSequenceClassification._from_config(
            cfg, attn_implementation=kind.removeprefix("hf-"))
    return model.to(device)


def logits_of(out):
    return out["logits"] if isinstance(out, dict) else out.logits


def train_throughput(model, batches, device, steps: int, warmup: int = 3, compile_model=False) -> dict:
    """Sequences/s and real tokens/s of full training steps (forward, backward, AdamW)."""
    step_model = torch.compile(model) if compile_model else model
    optimizer = make_optimizer(model, 1e-5, 0.01, device)
    model.train()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    seqs = tokens = 0
    for i in range(warmup + steps):
        if i == warmup:
            sync(device)
            start, seqs, tokens = time.perf_counter(), 0, 0
        batch = batches[i % len(batches)]
        inputs = {k: v.to(device, non_blocking=True) for k, v in batch.items() if k != "labels"}
        with autocast(device):
            logits = logits_of(step_model(**inputs))
        loss = torch.nn.functional.cross_entropy(logits.float(), batch["labels"].to(device))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        seqs += len(batch["labels"])
        tokens += int(batch["attention_mask"].sum())
    sync(device)
    seconds = time.perf_counter() - start
    return {"seq_per_s": round(seqs / seconds, 1), "real_tokens_per_s": round(tokens / seconds),
            "seconds": round(seconds, 2), "real_tokens": tokens, "peak_mem_gib": peak_memory(device)}


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def peak_memory(device):
    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if device.type == "cuda" else None


def training_flops_per_token(sizes: dict, seq: int) -> float:
    """≈ 3 × forward: 2 FLOPs per weight (non-embedding) plus attention's two seq × seq products."""
    h, layers = sizes["hidden_size"], sizes["num_hidden_layers"]
    weights = layers * (4 * h * h + 2 * h * sizes["intermediate_size"])
    return 3 * (2 * weights + 4 * layers * seq * h)


def add_flops(result: dict, sizes: dict, mean_len: float, device) -> dict:
    tflops = result["real_tokens_per_s"] * training_flops_per_token(sizes, mean_len) / 1e12
    result["useful_tflops"] = round(tflops, 1)
    if device.type == "cuda":
        name = torch.cuda.get_device_name()
        peak = next((v for k, v in BF16_PEAK_TFLOPS.items() if k in name), None)
        result["share_of_bf16_peak"] = round(tflops / peak, 3) if peak else None
    return result


def random_batch(lengths, vocab, n_labels, gen, pad_to=None):
    seqs = [[2] + torch.randint(5, vocab, (n - 2,), generator=gen).tolist() + [3] for n in lengths]
    batch = pad_batch(seqs)
    if pad_to and batch["input_ids"].shape[1] < pad_to:
        extra = pad_to - batch["input_ids"].shape[1]
        batch = {k: torch.nn.functional.pad(v, (0, extra)) for k, v in batch.items()}
    batch["labels"] = torch.randint(0, n_labels, (len(lengths),), generator=gen)
    return batch


def fixed_batches(batch, seq, vocab, n_labels, count=4):
    gen = torch.Generator().manual_seed(0)
    return [random_batch([seq] * batch, vocab, n_labels, gen) for _ in range(count)]


def padded_random_batches(lengths, batch_size, vocab, n_labels):
    """transformers' usual recipe: shuffled batches padded to their longest member."""
    gen, order = torch.Generator().manual_seed(0), list(range(len(lengths)))
    random.Random(0).shuffle(order)
    return [random_batch([lengths[i] for i in order[s:s + batch_size]], vocab, n_labels, gen)
            for s in range(0, len(order), batch_size)]


def bucketed_batches(lengths, batch_size, vocab, n_labels):
    """Our pipeline: length-bucketed batches with dynamic padding."""
    gen = torch.Generator().manual_seed(0)
    return [random_batch([lengths[i] for i in idx], vocab, n_labels, gen)
            for idx in length_bucketed_batches(lengths, batch_size, seed=0)]


def livedoor_lengths(max_length: int, first_paragraph: bool, limit: int | None) -> list[int]:
    from solutions.data import read_livedoor
    from solutions.tokenization import Tokenizer, train_vocab

    records = read_livedoor(LIVEDOOR)[:limit]
    texts = [r.text.split("\n\n")[0] if first_paragraph else r.text for r in records]
    tokenizer = Tokenizer(train_vocab(texts[:2000], 32768))
    encoded = tokenizer.encode_batch([r.title for r in records], texts, max_length=max_length, padding=False)
    return [len(ids) for ids in encoded["input_ids"]]


def variants(device, allow_compile: bool):
    yield "hf-eager", "hf-eager", False
    yield "hf-sdpa", "hf-sdpa", False
    if allow_compile:
        yield "hf-sdpa+compile", "hf-sdpa", True
    yield "ours", "ours", False
    if allow_compile:
        yield "ours+compile", "ours", True


def ratio_line(section, results):
    theirs = max(v["seq_per_s"] for k, v in results.items() if k.startswith("hf"))
    ours = max(v["seq_per_s"] for k, v in results.items() if k.startswith("ours"))
    emit(section=section, ratio_ours_over_best_hf=round(ours / theirs, 3))


@torch.inference_mode()
def run_model(model, batch, device):
    inputs = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    with autocast(device):
        return logits_of(model(**inputs)).float().softmax(-1).cpu()


def predict_transformers(model, tokenizer, titles, texts, batch_size, max_length, device):
    """The usual transformers loop: tokenize a batch in input order, pad to its longest, run."""
    outputs = []
    for s in range(0, len(texts), batch_size):
        batch = tokenizer(titles[s:s + batch_size], texts[s:s + batch_size], padding=True, truncation=True,
                          max_length=max_length, return_token_type_ids=True, return_tensors="pt")
        outputs.append(run_model(model, dict(batch), device))
    return torch.cat(outputs)


def predict_ours(model, tokenizer, titles, texts, batch_size, max_length, device):
    """Our pipeline: fast batch tokenization, then length-sorted batches."""
    from solutions.batching import sorted_batches

    encoded = tokenizer.encode_batch(titles, texts, max_length=max_length, padding=False)
    ids, segments = encoded["input_ids"], encoded["token_type_ids"]
    out = [None] * len(ids)
    for idx in sorted_batches([len(x) for x in ids], batch_size):
        probs = run_model(model, pad_batch([ids[i] for i in idx], 0, [segments[i] for i in idx]), device)
        for row, i in enumerate(idx):
            out[i] = probs[row]
    return torch.stack(out)


def prediction_section(sizes, n_labels, device, pages: int, limit):
    """Pages/s of prediction, tokenization included, with the same weights in both."""
    import tempfile

    from solutions.checkpoints import to_hf_state_dict
    from solutions.data import read_livedoor
    from solutions.tokenization import Tokenizer, train_vocab

    records = read_livedoor(LIVEDOOR)[:limit]
    records = [records[i % len(records)] for i in range(pages)]
    titles = [r.title for r in records]
    texts = [r.text.split("\n\n")[0] for r in records]
    ours_tok = Tokenizer(train_vocab(texts[:2000], sizes["vocab_size"]))
    sizes = {**sizes, "vocab_size": ours_tok.vocab_size}
    with tempfile.TemporaryDirectory() as tmp:
        ours_tok.save(tmp)
        hf_tok = transformers.AutoTokenizer.from_pretrained(tmp)
    ours = build("ours", sizes, n_labels, device).eval()
    theirs = build("hf-sdpa", sizes, n_labels, device).eval()
    theirs.load_state_dict(to_hf_state_dict(ours), strict=False)
    batch_size, max_length = 64, 256
    results = {}
    for name, fn, model, tok in (("hf-sdpa", predict_transformers, theirs, hf_tok),
                                 ("ours", predict_ours, ours, ours_tok)):
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        sync(device)
        start = time.perf_counter()
        probs = fn(model, tok, titles, texts, batch_size, max_length, device)
        sync(device)
        seconds = time.perf_counter() - start
        results[name] = probs
        emit(section="predict", variant=name, pages=pages, pages_per_s=round(pages / seconds, 1),
             seconds=round(seconds, 2), peak_mem_gib=peak_memory(device))
    agree = (results["ours"].argmax(-1) == results["hf-sdpa"].argmax(-1)).float().mean().item()
    emit(section="predict", same_label_share=round(agree, 4),
         max_prob_diff=round((results["ours"] - results["hf-sdpa"]).abs().max().item(), 5))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--device", default="auto")
    p.add_argument("--steps", type=int, help="timed steps per variant (default 20 GPU / 3 CPU)")
    p.add_argument("--labels", type=int, default=200)
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--limit", type=int, help="livedoor articles to use (default all on GPU, 200 on CPU)")
    p.add_argument("--lengths", help="JSON file with saved livedoor lengths")
    p.add_argument("--save-lengths", help="write the livedoor lengths to this JSON file and exit")
    p.add_argument("--predict-pages", type=int, help="pages for the prediction section (default 20000 GPU / 200 CPU)")
    args = p.parse_args(argv)

    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    gpu = device.type == "cuda"
    sizes = BASE if gpu else TINY
    steps = args.steps or (20 if gpu else 3)
    limit = args.limit or (None if gpu else 200)
    if args.save_lengths:
        lengths = {"whole": livedoor_lengths(512, False, limit), "first": livedoor_lengths(256, True, limit)}
        Path(args.save_lengths).write_text(json.dumps(lengths))
        return
    emit(section="setup", device=torch.cuda.get_device_name() if gpu else "cpu", torch=torch.__version__,
         transformers=transformers.__version__, sizes=sizes, labels=args.labels, steps=steps)

    shapes = [(32, 512), (128, 128)] if gpu else [(4, 64), (8, 32)]
    for batch, seq in shapes:
        results = {}
        data = fixed_batches(batch, seq, sizes["vocab_size"], args.labels)
        for name, kind, compiled in variants(device, gpu and not args.no_compile):
            model = build(kind, sizes, args.labels, device)
            results[name] = add_flops(train_throughput(model, data, device, steps, compile_model=compiled),
                                      sizes, seq, device)
            emit(section=f"train_fixed_{batch}x{seq}", variant=name, **results[name])
            del model
        ratio_line(f"train_fixed_{batch}x{seq}", results)

    if args.lengths:
        saved = json.loads(Path(args.lengths).read_text())
    elif LIVEDOOR.exists():
        saved = {"whole": livedoor_lengths(512, False, limit), "first": livedoor_lengths(256, True, limit)}
    else:
        emit(section="train_real_lengths", skipped=f"{LIVEDOOR} がありません")
        return
    for part, lengths in saved.items():
        batch_size = 32 if gpu else 8
        mean_len = sum(lengths) / len(lengths)
        theirs_batches = padded_random_batches(lengths, batch_size, sizes["vocab_size"], args.labels)
        our_batches = bucketed_batches(lengths, batch_size, sizes["vocab_size"], args.labels)
        results = {}
        for name, kind, compiled in variants(device, gpu and not args.no_compile):
            batches = our_batches if kind == "ours" else theirs_batches
            model = build(kind, sizes, args.labels, device)
            n = min(len(batches), max(steps, 2 * steps if gpu else steps))
            results[name] = add_flops(train_throughput(model, batches, device, n, compile_model=compiled),
                                      sizes, mean_len, device)
            padded = sum(b["attention_mask"].numel() for b in batches)
            real = sum(int(b["attention_mask"].sum()) for b in batches)
            emit(section=f"train_livedoor_{part}", variant=name, real_token_share=round(real / padded, 3),
                 mean_len=round(mean_len, 1), **results[name])
            del model
        ratio_line(f"train_livedoor_{part}", results)

    try:
        import fugashi  # noqa: F401
    except ImportError:
        emit(section="predict", skipped="fugashi がないので予測 (トークン化込み) は測れません")
        return
    prediction_section(sizes, args.labels, device, args.predict_pages or (20000 if gpu else 200), limit)


if __name__ == "__main__":
    main()
