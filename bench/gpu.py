"""Our BERT classifier against transformers' on the same device: training and
prediction throughput, peak memory and achieved TFLOP/s. Prints JSON lines.

    python bench/gpu.py                   # on a GPU: bert-base-japanese-v3 sizes
    python bench/gpu.py --device cpu      # tiny sizes, a smoke test (no timing claims)

Real lengths come from the livedoor articles in ../shared/data (--archive),
tokenized here with our tokenizer (--lengths FILE reuses lengths saved by
--save-lengths, for a machine without MeCab). Throughput depends on the
lengths, not on the ids, so the batches hold random ids of those lengths.

Sections, most important first (a run cut short keeps what it printed):
fixed 32 x 512, livedoor whole articles, livedoor title + first paragraph,
fixed 128 x 128, prediction with tokenization; with --extra, last, the extra
fixed-length variants at 32 x 512, then at 128 x 128 (and a second ratio line for
each of those sections). "ours" is the classifier `train`
uses (solutions.fast: the last layer at [CLS] only); "+unpad" packs each batch
without [PAD] (`train --unpad`); "+compile" is torch.compile(model) for
transformers and compile_layers (regional compilation) for ours;
"+compile-model+cudagraphs" is ours compiled whole and replayed as CUDA graphs
(`train --cuda-graphs`; on real lengths with batches padded to a multiple of 16);
"+compile+cudagraphs" (--extra, an experiment) replays each compiled layer as a CUDA graph.
In the real-length sections only ours is compiled (dynamic shapes), as `train --compile`
does, and transformers runs as its users run it: sdpa, shuffled batches padded
to their longest member. There every variant first makes one untimed pass over
the batches it is timed on (compiling, for a compiled one: "warmup_s", of which the
first step "first_step_s"; with CUDA graphs, three passes over one batch of each shape,
which records each shape's graph; "recorded_while_timed" says whether the timed steps
recorded any), so the figures are those of a long training run. A compiled variant
also reports its graphs, inductor's cache hits and misses, CUDA graphs skipped and
why it compiled again. --variants NAME,... runs only those variants. --profile N profiles N more steps of
each fixed-length variant: where the device's time goes, by kind of kernel. The last lines
("targets") give each section's ratio against its target (issue 7) and whether all were met.
"""
from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [os.path.dirname(HERE)] + [p for p in sys.path if os.path.abspath(p or ".") != HERE]

import argparse  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
import transformers  # noqa: E402

from solutions.batching import length_bucketed_batches, pad_batch, padded_length  # noqa: E402
from solutions.config import BertConfig  # noqa: E402
from solutions.encoding import WORKERS  # noqa: E402
from solutions.fast import FastBertForSequenceClassification  # noqa: E402
from solutions.training import (GRAPH_LENGTH_MULTIPLE, amp_dtype, autocast, batch_to_device,  # noqa: E402
                                compile_layers, compile_model, make_optimizer, model_for_steps, to_device)

BASE = dict(vocab_size=32768, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
            intermediate_size=3072, max_position_embeddings=512)
TINY = dict(vocab_size=2000, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=256, max_position_embeddings=512)
BF16_PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L4": 121.0}
LIVEDOOR = Path(HERE).parent.parent / "shared" / "data" / "livedoor" / "ldcc-20140209-train80.tar.gz"


STARTED = time.perf_counter()
SELECTED: set[str] | None = None  # --variants: exactly these variants
EXTRA = False                     # --extra: the extra variants as well as the default ones


def runs(name: str) -> bool:
    """Whether a variant runs: named by --variants; else a default one, or an extra one with --extra."""
    if SELECTED is not None:
        return name in SELECTED
    return EXTRA or name not in EXTRA_NAMES


def emit(**record):
    """One JSON line; elapsed_s: seconds since the start, so that the time of each
    variant (and of a run without --extra) can be read off any run."""
    record["elapsed_s"] = round(time.perf_counter() - STARTED, 1)
    print(json.dumps(record, ensure_ascii=False), flush=True)


def build(kind: str, sizes: dict, n_labels: int, device, unpad: bool = False):
    """'ours' or 'hf-eager' / 'hf-sdpa'; the same initial weights are not needed for speed."""
    torch.manual_seed(0)
    with torch.device(device):  # initialise on the device: much faster than on the CPU
        if kind == "ours":
            model = FastBertForSequenceClassification(BertConfig(**sizes, labels=[str(i) for i in range(n_labels)]))
            model.unpad = unpad
            return model
        cfg = transformers.BertConfig(**sizes, num_labels=n_labels)
        return transformers.BertForSequenceClassification._from_config(
            cfg, attn_implementation=kind.removeprefix("hf-")).to(device)


def prepare(model, ours: bool, compiled, dynamic: bool | None = None):
    """The model as each side runs it: torch.compile for transformers, regional
    compilation (compile_layers) for ours. compiled="model": torch.compile of the
    whole model for ours too; "cudagraphs": the same with CUDA graphs (mode
    reduce-overhead); "layers+cudagraphs" (an experiment): each layer compiled and
    replayed as a CUDA graph, the rest of the step launched as usual."""
    if not compiled:
        return model
    if ours and compiled is True:
        return compile_layers(model, dynamic=dynamic)
    if compiled == "layers+cudagraphs":
        model.run_layer = torch.compile(model.run_layer, dynamic=dynamic, mode="reduce-overhead")
        return model
    return compile_model(model, cuda_graphs=compiled == "cudagraphs", dynamic=dynamic)


def with_cuda_graphs(compiled) -> bool:
    return str(compiled).endswith("cudagraphs")


@contextlib.contextmanager
def expected_warnings_silenced(compiled):
    """CUDA graph trees' "Unable to hit fast path of CUDAGraphs" warning, silenced for
    "layers+cudagraphs": there one graph runs once for each layer while the step's
    backward is still to come, which the trees take for a step that cannot start; the
    next step does start afresh (replayed, as recorded_while_timed shows)."""
    with warnings.catch_warnings():
        if compiled == "layers+cudagraphs":
            warnings.filterwarnings("ignore", message="Unable to hit fast path of CUDAGraphs")
        yield


def move(batch: dict, device, ours: bool) -> dict:
    """Ours drops the mask of a batch without [PAD]; transformers decides inside.
    Both copy from pinned memory without waiting for the GPU, as `train` does."""
    batch = {k: v for k, v in batch.items() if k != "labels"}
    if ours:
        return batch_to_device(batch, device)
    return {k: to_device(v, device) for k, v in batch.items()}


def without_cudnn_attention(active: bool):
    """transformers' attention restricted to the kernels ours uses."""
    from solutions.attention import FUSED_KERNELS
    return torch.nn.attention.sdpa_kernel(FUSED_KERNELS) if active else contextlib.nullcontext()


@contextlib.contextmanager
def cudnn_attention_allowed(active: bool):
    """Ours with cuDNN's attention kernel allowed as well. solutions leaves it out
    because it plans anew for every sequence length; at a fixed length one plan
    serves every step, and transformers' sdpa may be using it."""
    from solutions.attention import FUSED_KERNELS

    saved = list(FUSED_KERNELS)
    if active:
        FUSED_KERNELS.insert(0, torch.nn.attention.SDPBackend.CUDNN_ATTENTION)
    try:
        yield
    finally:
        FUSED_KERNELS[:] = saved


def logits_of(out):
    return out["logits"] if isinstance(out, dict) else out.logits


def train_throughput(model, batches, device, steps: int, *, ours: bool, compiled=False, dynamic=None,
                     warmup: int | list = 3, profile_steps: int = 0) -> dict:
    """Sequences/s and real tokens/s of full training steps (forward, backward, AdamW),
    timed after `warmup` untimed steps (a count of the timed batches, or a list of
    batches of its own; their seconds: warmup_s, of which the first step's: first_step_s,
    for a compiled variant its first graph's compiling; later graphs compile in later
    steps); halves_seq_per_s: the rates of the first and second
    half of the timed steps, whose spread says how far a difference between variants can
    be noise. profile_steps: then that many more steps under the profiler ("profile", not timed)."""
    from torch._dynamo.utils import counters

    # this variant's graphs, counts and reasons only: code compiled before (the same
    # model class) would make this variant's graphs recompilations, traced differently
    torch._dynamo.reset()
    counters.clear()
    step_model = prepare(model, ours, compiled, dynamic)
    optimizer = make_optimizer(model, 1e-5, 0.01, device)
    model.train()

    def step(batch):
        with autocast(device):
            logits = logits_of(step_model(**move(batch, device, ours)))
        loss = torch.nn.functional.cross_entropy(logits.float(), to_device(batch["labels"], device))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    untimed = warmup if isinstance(warmup, list) else [batches[i % len(batches)] for i in range(warmup)]
    schedule = untimed + [batches[i % len(batches)] for i in range(steps)]
    seqs = tokens = 0
    first_step, began = None, time.perf_counter()
    with expected_warnings_silenced(compiled):
        for i, batch in enumerate(schedule):
            if i == 1 and untimed:  # the first step's seconds (compiling the first graph)
                sync(device)
                first_step = time.perf_counter() - began
            if i == len(untimed):
                sync(device)
                start, seqs, tokens = time.perf_counter(), 0, 0
                recorded_before = counters["inductor"]["cudagraph_recorded_non_static_inputs"]
            if i == len(untimed) + steps // 2:  # the halves' rates: how much the figure moves within one run
                sync(device)
                middle, seqs_before = time.perf_counter(), seqs
            step(batch)
            seqs += len(batch["labels"])
            tokens += int(batch["attention_mask"].sum())
    sync(device)
    end = time.perf_counter()
    seconds = end - start
    halves = [seqs_before / (middle - start), (seqs - seqs_before) / (end - middle)] if steps >= 2 else []
    result = {"seq_per_s": round(seqs / seconds, 1), "halves_seq_per_s": [round(h, 1) for h in halves],
              "real_tokens_per_s": round(tokens / seconds),
              "seconds": round(seconds, 2), "warmup_s": round(start - began, 2),
              "first_step_s": first_step and round(first_step, 2), "real_tokens": tokens, "peak_mem_gib": peak_memory(device)}
    if compiled:  # what torch.compile made of it: a graph break or a recompilation costs speed
        result.update(compile_report(counters))
        if with_cuda_graphs(compiled):  # a graph recorded while timed: the warm-up missed a shape
            result["recorded_while_timed"] = (counters["inductor"]["cudagraph_recorded_non_static_inputs"]
                                              != recorded_before)
    if profile_steps:
        try:
            result["profile"] = time_by_kernel(lambda i: step(batches[i % len(batches)]), profile_steps, device)
        except Exception as e:  # noqa: BLE001 (a profiler failure must not lose the timing)
            result["profile"] = {"error": f"{type(e).__name__}: {e}"[:300]}
    return result


def recompile_reasons() -> list[str]:
    """Why torch.compile compiled again in this variant: each failed
    guard ("0/0: attention_mask is None  # the source line"), once, without the stack.
    Dynamo records them whether or not its "recompiles" log is on."""
    from torch._dynamo.utils import guard_failures

    reasons = [" ".join(reason.split("\nUser stack trace:")[0].split())
               for failures in guard_failures.values() for reason in failures]
    return list(dict.fromkeys(reasons))


def compile_report(counters) -> dict:
    """What compiling cost and made: graphs (each a compilation), graph breaks, inductor's
    cache (a graph compiled before, here or in an earlier run, is taken from disk), CUDA
    graphs skipped (the variant then runs without them), and why it compiled again."""
    inductor = counters["inductor"]
    return {"compiled_graphs": counters["stats"]["unique_graphs"],
            "graph_breaks": sum(counters["graph_break"].values()),
            "fx_cache_hits": inductor["fxgraph_cache_hit"], "fx_cache_misses": inductor["fxgraph_cache_miss"],
            "cudagraph_skips": inductor["cudagraph_skips"],
            "recompile_reasons": [r[:200] for r in recompile_reasons()[:12]]}


# Kinds of kernel (or of CPU operator, on a CPU), by name; the first match wins.
KERNEL_KINDS = [("attention", ("flash", "fmha", "sdpa", "attention", "cudnn")),
                ("optimizer", ("adam", "multi_tensor", "foreach")),
                ("matmul", ("gemm", "nvjet", "cutlass", "xmma", "cublas", "aten::mm", "aten::addmm", "aten::bmm")),
                ("compiled", ("triton",)),
                ("embedding", ("embedding", "index", "scatter", "gather", "sort", "radix")),
                ("norm", ("layer_norm", "layernorm")), ("dropout", ("dropout", "bernoulli")),
                ("softmax", ("softmax",)), ("copy", ("memcpy", "memset", "copy")),
                ("elementwise", ("elementwise", "reduce_kernel"))]


def kernel_kind(name: str) -> str:
    lower = name.lower()
    return next((kind for kind, keys in KERNEL_KINDS if any(k in lower for k in keys)), "other")


def time_by_kernel(run_step, steps: int, device, top: int = 8) -> dict:
    """Where a step's time goes on the device: busy milliseconds per step by kind of
    kernel, and the costliest kernels. Busy time well under the step's time means the
    device waits for the CPU. On a CPU: self time of the operators instead."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    on_gpu = device.type == "cuda"
    sync(device)
    with profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_gpu else [])) as prof:
        start = time.perf_counter()
        for i in range(steps):
            run_step(i)
        sync(device)
        wall = time.perf_counter() - start
    averages = prof.key_averages()
    if not on_gpu:
        source, events = "cpu operators", [(e.key, e.self_cpu_time_total, e.count) for e in averages]
    else:
        source = "kernels"
        events = [(e.key, e.self_device_time_total, e.count) for e in averages if e.device_type == DeviceType.CUDA]
        if not events:  # no kernel records: the operators' device time instead
            source = "operators"
            events = [(e.key, e.self_device_time_total, e.count) for e in averages if e.self_device_time_total > 0]
    per_step = [(name, us / 1000 / steps, count // steps) for name, us, count in events]  # ms, calls
    by_kind = {}
    for name, ms, _ in per_step:
        kind = kernel_kind(name)
        by_kind[kind] = by_kind.get(kind, 0.0) + ms
    costliest = sorted(per_step, key=lambda e: -e[1])[:top]
    return {"steps": steps, "source": source, "step_ms": round(1000 * wall / steps, 2),
            "busy_ms": round(sum(ms for _, ms, _ in per_step), 2),
            "by_kind_ms": {k: round(v, 2) for k, v in sorted(by_kind.items(), key=lambda kv: -kv[1])},
            "top": [[name[:80], round(ms, 3), calls] for name, ms, calls in costliest]}


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def peak_memory(device):
    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if device.type == "cuda" else None


def release(device):
    """Forget compiled graphs and cached blocks, so the next variant starts clean."""
    torch._dynamo.reset()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def training_flops_per_token(sizes: dict, seq: float) -> float:
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


def random_batch(lengths, vocab, n_labels, gen):
    seqs = [[2] + torch.randint(5, vocab, (n - 2,), generator=gen).tolist() + [3] for n in lengths]
    batch = pad_batch(seqs)
    batch["labels"] = torch.randint(0, n_labels, (len(lengths),), generator=gen)
    return batch


def fixed_batches(batch, seq, vocab, n_labels, count=4):
    gen = torch.Generator().manual_seed(0)
    return [random_batch([seq] * batch, vocab, n_labels, gen) for _ in range(count)]


def padded_to_multiple(batch: dict, multiple: int, limit: int) -> dict:
    """The batch padded further, to a length that is a multiple of `multiple` (at most `limit`)."""
    length = batch["input_ids"].shape[1]
    extra = padded_length(length, multiple, limit) - length
    if extra == 0:
        return batch
    return {k: torch.nn.functional.pad(v, (0, extra)) if v.dim() == 2 else v for k, v in batch.items()}


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


def livedoor_lengths(archive, max_length: int, first_only: bool, limit: int | None) -> list[int]:
    from solutions.data import first_paragraph, read_livedoor
    from solutions.tokenization import Tokenizer, train_vocab

    records = read_livedoor(archive)[:limit]
    texts = [first_paragraph(r.text) if first_only else r.text for r in records]
    tokenizer = Tokenizer(train_vocab(texts[:2000], 32768))
    encoded = tokenizer.encode_batch([r.title for r in records], texts, max_length=max_length, padding=False,
                                     workers=WORKERS)
    return [len(ids) for ids in encoded["input_ids"]]


def measure(section, name, fn, extra=None):
    """Run one variant; a failure is reported as a line and the run goes on."""
    try:
        result = fn()
    except Exception as e:  # noqa: BLE001 (one broken variant must not lose the others)
        emit(section=section, variant=name, error=f"{type(e).__name__}: {e}"[:500])
        traceback.print_exc()
        return None
    emit(section=section, variant=name, **(extra or {}), **result)
    return result


# Issue 7's targets: ours ÷ transformers' best as its users run it (cuDNN's attention not taken out)
TARGETS = {"train_fixed_32x512": 1.3, "train_fixed_128x128": 1.3, "train_livedoor_whole": 1.35,
           "train_livedoor_first": 2.0, "predict": 1.5}
REACHED: dict[str, dict] = {}  # section -> its ratio and peak memories (ratio lines; the targets line reads it)


def targets_line():
    """Each measured section against its target, and peak memory against transformers'."""
    sections = {section: {"ratio": got["ratio"], "target": TARGETS[section], "met": got["ratio"] >= TARGETS[section],
                          "memory_met": got["ours_gib"] <= got["hf_gib"]}
                for section, got in REACHED.items() if section in TARGETS}
    if sections:
        emit(section="targets", **sections,
             all_met=all(s["met"] and s["memory_met"] for s in sections.values()) and len(sections) == len(TARGETS))


def ratio_line(section, results):
    done = {k: v for k, v in results.items() if v}
    theirs = [v["seq_per_s"] for k, v in done.items() if k.startswith("hf")]
    ours = [v["seq_per_s"] for k, v in done.items() if k.startswith("ours")]
    if theirs and ours:
        default_hf = [v["seq_per_s"] for k, v in done.items() if k.startswith("hf") and "no-cudnn" not in k]
        default_ratio = round(max(ours) / max(default_hf), 3) if default_hf else None
        if len(default_hf) < len(theirs):
            emit(section=section, ratio_ours_over_best_default_hf=default_ratio)
        hf_mem = min(v["peak_mem_gib"] or 0 for k, v in done.items() if k.startswith("hf"))
        our_mem = min(v["peak_mem_gib"] or 0 for k, v in done.items() if k.startswith("ours"))
        if default_ratio is not None:
            REACHED[section] = {"ratio": default_ratio, "ours_gib": our_mem, "hf_gib": hf_mem}
        emit(section=section, ratio_ours_over_best_hf=round(max(ours) / max(theirs), 3),
             best_hf=max((k for k in done if k.startswith("hf")), key=lambda k: done[k]["seq_per_s"]),
             peak_mem_ours_gib=our_mem, peak_mem_hf_gib=hf_mem)


FIXED_VARIANTS = [("hf-eager", "hf-eager", False), ("hf-sdpa", "hf-sdpa", False),
                  ("hf-sdpa+compile", "hf-sdpa", True), ("ours", "ours", False), ("ours+compile", "ours", True),
                  ("ours+compile-model+cudagraphs", "ours", "cudagraphs")]
# --extra, run last: ours with cuDNN's attention allowed; the whole model compiled without CUDA graphs;
# each layer compiled and replayed as a CUDA graph (compiling takes seconds, not a minute; to be measured)
FIXED_EXTRA = [("ours+compile+cudnn", "ours", True), ("ours+compile-model", "ours", "model"),
               ("ours+compile+cudagraphs", "ours", "layers+cudagraphs")]


def fixed_section(batch, seq, sizes, labels, device, steps, allow_compile, variants=FIXED_VARIANTS,
                  earlier: dict | None = None, profile: int = 0) -> dict:
    """earlier: this section's results from a previous pass, for the ratio line.
    profile: steps per variant to profile after the timed ones (0: none)."""
    section, results = f"train_fixed_{batch}x{seq}", dict(earlier or {})
    data = fixed_batches(batch, seq, sizes["vocab_size"], labels)
    for name, kind, compiled in variants:
        if (compiled and not allow_compile) or not runs(name):
            continue

        def run():
            model = build(kind, sizes, labels, device)
            with cudnn_attention_allowed(name.endswith("+cudnn")):
                # dynamic=False: one fixed shape, static kernels
                out = train_throughput(model, data, device, steps, ours=kind == "ours", compiled=compiled,
                                       dynamic=False, profile_steps=profile)
            return add_flops(out, sizes, seq, device)
        results[name] = measure(section, name, run)
        release(device)
    ratio_line(section, results)
    if earlier is None:
        work_ratio_line(section, batch, seq, sizes, labels)
    return results


def step_flops(kind: str, sizes: dict, labels: int, batch: int, seq: int) -> int:
    """FLOPs of one training step's forward and backward (no [PAD]), counted by
    PyTorch's FlopCounterMode on the meta device: shapes only, nothing computed."""
    from torch.utils.flop_counter import FlopCounterMode

    model = build(kind, sizes, labels, "meta")
    ids = torch.zeros(batch, seq, dtype=torch.long, device="meta")
    with FlopCounterMode(display=False) as counter:
        logits_of(model(input_ids=ids)).float().sum().backward()
    return counter.get_total_flops()


def work_ratio_line(section, batch, seq, sizes, labels):
    """How much less work ours does on the same batch (the last layer at [CLS] only):
    a speed ratio above this one comes from faster kernels, not from less work."""
    ours, theirs = step_flops("ours", sizes, labels, batch, seq), step_flops("hf-sdpa", sizes, labels, batch, seq)
    emit(section=section, work_ratio_hf_over_ours=round(theirs / ours, 4),
         step_gflop_ours=round(ours / 1e9, 2), step_gflop_hf=round(theirs / 1e9, 2))


REAL_LENGTH_VARIANTS = [("hf-sdpa", "hf-sdpa", False), ("ours", "ours", False), ("ours+compile", "ours", True),
                        ("ours+compile-model+cudagraphs", "ours", "cudagraphs")]
# --extra: transformers with the same attention kernels as ours (cuDNN's left out); ours packed
# without [PAD] (nested tensors cost Python time per operation: compiled, that time goes away);
# ours with cuDNN's attention on batches padded to a multiple of 64 tokens (eight lengths up to
# 512, so cuDNN plans once for each); each layer compiled and replayed as a CUDA graph.
REAL_LENGTH_EXTRA = [("hf-sdpa-no-cudnn", "hf-sdpa-no-cudnn", False), ("ours+unpad", "ours", False),
                     ("ours+unpad+compile", "ours", True), ("ours+cudnn64", "ours", False),
                     ("ours+compile+cudnn64", "ours", True),
                     ("ours+compile+cudagraphs", "ours", "layers+cudagraphs")]
# on an H200, --unpad was slower everywhere (bench/results/h200-2026-11-27): prediction's
# "ours+unpad" is extra too (the name is one of these)
EXTRA_NAMES = {name for name, *_ in FIXED_EXTRA + REAL_LENGTH_EXTRA}
PREDICT_VARIANTS = ("ours", "ours+unpad")  # of ours; transformers' sdpa always runs


def with_padding_first(batches: list) -> list:
    """Batches with [PAD] (an attention mask) before those without. Each kind is its own
    graph for torch.compile, and a graph compiled after another is traced a little
    differently: in the same order in every section, a later section finds its graphs
    in inductor's cache instead of compiling them again."""
    return sorted(batches, key=lambda b: bool(b["attention_mask"].all()))  # stable


def batch_kind(batch: dict) -> tuple:
    return tuple(batch["input_ids"].shape), bool(batch["attention_mask"].all())


def warmup_batches(batches: list, compiled) -> list:
    """The untimed steps before a real-length variant is timed: one pass over the very
    batches that are timed (for a compiled variant, compiling). With CUDA graphs, one
    batch of each shape, three times over: a graph is recorded on a shape's second run
    and replayed from its third, so the timed steps only replay."""
    if not with_cuda_graphs(compiled):
        return with_padding_first(batches) if compiled else list(batches)
    one_of_each = {}
    for batch in with_padding_first(batches):
        one_of_each.setdefault(batch_kind(batch), batch)
    return list(one_of_each.values()) * 3


def real_length_section(part, lengths, sizes, labels, device, steps, allow_compile, gpu):
    section, results = f"train_livedoor_{part}", {}
    batch_size = 32 if gpu else 8
    mean_len = sum(lengths) / len(lengths)
    theirs_batches = padded_random_batches(lengths, batch_size, sizes["vocab_size"], labels)
    our_batches = bucketed_batches(lengths, batch_size, sizes["vocab_size"], labels)
    for name, kind, compiled in REAL_LENGTH_VARIANTS + REAL_LENGTH_EXTRA:
        if (compiled and not allow_compile) or not runs(name) or (kind.endswith("-no-cudnn") and not gpu):
            continue
        batches = our_batches if kind.startswith("ours") else theirs_batches
        if name.endswith("+cudnn64"):
            batches = [padded_to_multiple(b, 64, max(lengths)) for b in batches]
        if with_cuda_graphs(compiled):  # as train --cuda-graphs pads them: a graph for each length
            batches = [padded_to_multiple(b, GRAPH_LENGTH_MULTIPLE, max(lengths)) for b in batches]
        n = min(len(batches), 2 * steps if gpu else steps)

        def run():
            model = build(kind.removesuffix("-no-cudnn"), sizes, labels, device, unpad="+unpad" in name)
            with without_cudnn_attention(kind.endswith("-no-cudnn")), cudnn_attention_allowed("+cudnn" in name):
                out = train_throughput(model, batches[:n], device, n, ours=kind == "ours", compiled=compiled,
                                       dynamic=True, warmup=warmup_batches(batches[:n], compiled))
            return add_flops(out, sizes, mean_len, device)
        padded = sum(b["attention_mask"].numel() for b in batches)
        real = sum(int(b["attention_mask"].sum()) for b in batches)
        results[name] = measure(section, name, run, {"real_token_share": round(real / padded, 3),
                                                     "mean_len": round(mean_len, 1)})
        release(device)
    ratio_line(section, results)
    unpad_check(section, max(our_batches, key=lambda b: int((b["attention_mask"] == 0).sum())), sizes, labels,
                device)
    if results.get("ours+compile-model+cudagraphs") and part == "whole":  # once is enough
        try:
            cudagraphs_check(section, sizes, labels, device)
        except Exception as e:  # noqa: BLE001 (a failed check is reported, the run goes on)
            emit(section=section, check="cudagraphs_same_training", error=f"{type(e).__name__}: {e}"[:500])


def cudagraphs_check(section, sizes, labels, device, steps: int = 6):
    """`train --cuda-graphs` takes the steps that plain training takes: the same weights,
    the same examples through finetune.train_step (padding, clipping, scheduler), dropout
    off (eval mode). Batches of two padded widths alternate, so each width's graph is run,
    recorded, then replayed. Gives each step's loss and the final weights, to bf16's precision.
    Two layers: what is checked does not depend on the depth, and compiling the whole
    12-layer model twice took 22 s of an H200 run."""
    from solutions.finetune import FinetuneSettings, train_step
    from solutions.training import grad_scaler, make_scheduler

    sizes = {**sizes, "num_hidden_layers": min(2, sizes["num_hidden_layers"])}
    gen = torch.Generator().manual_seed(1)
    lengths = []
    for i in range(steps):  # batches of 8 whose longest is 128, then 100 (padded to 112), in turn
        longest = 128 if i % 2 == 0 else 100
        lengths += [longest] + torch.randint(60, longest + 1, (7,), generator=gen).tolist()
    encoded = {"input_ids": [[2] + torch.randint(5, sizes["vocab_size"], (n - 2,), generator=gen).tolist() + [3]
                             for n in lengths], "token_type_ids": [[0] * n for n in lengths]}
    y = torch.randint(0, labels, (len(lengths),), generator=gen)
    losses, weights = {}, {}
    for graphs in (False, True):
        model = build("ours", sizes, labels, device).eval()  # the same seed: the same weights
        stepped = model_for_steps(model, cuda_graphs=graphs, dynamic=True)  # as train's start_run does
        optimizer = make_optimizer(model, 1e-4, 0.01, device)
        scheduler, scaler = make_scheduler(optimizer, 1, steps), grad_scaler(device)
        settings = FinetuneSettings(max_length=128, cuda_graphs=graphs)
        losses[graphs] = [train_step(stepped, optimizer, scheduler, list(range(8 * i, 8 * i + 8)), encoded, y,
                                     settings, device, scaler).item()  # read before the next step replays
                          for i in range(steps)]
        weights[graphs] = model.classifier.weight.detach().float().clone()
        release(device)
    emit(section=section, check="cudagraphs_same_training", layers=sizes["num_hidden_layers"], losses=[round(v, 5) for v in losses[False]],
         losses_cudagraphs=[round(v, 5) for v in losses[True]],
         max_loss_diff=float(f"{max(abs(a - b) for a, b in zip(losses[False], losses[True])):.2e}"),
         max_weight_diff=float(f"{(weights[True] - weights[False]).abs().max().item():.2e}"))


@torch.no_grad()
def unpad_check(section, batch, sizes, labels, device):
    """The same logits with and without [PAD] in the computation, on this device's kernels."""
    model = build("ours", sizes, labels, device).eval()
    logits = {}
    for unpad in (False, True):
        model.unpad = unpad
        with autocast(device):
            logits[unpad] = logits_of(model(**move(batch, device, ours=True))).float()
    emit(section=section, check="unpad_same_logits", pads=int((batch["attention_mask"] == 0).sum()),
         max_abs_diff=float(f"{(logits[True] - logits[False]).abs().max().item():.2e}"),
         max_abs_logit=float(f"{logits[False].abs().max().item():.2e}"),  # the scale (bf16: about 3 digits)
         same_argmax=bool(torch.equal(logits[True].argmax(-1), logits[False].argmax(-1))))


@torch.inference_mode()
def predict_transformers(model, tokenizer, titles, texts, batch_size, max_length, device):
    """The usual transformers loop: tokenize a batch in input order, pad to its longest, run."""
    outputs = []
    for s in range(0, len(texts), batch_size):
        batch = tokenizer(titles[s:s + batch_size], texts[s:s + batch_size], padding=True, truncation=True,
                          max_length=max_length, return_token_type_ids=True, return_tensors="pt")
        with autocast(device):
            logits = logits_of(model(**{k: v.to(device) for k, v in batch.items()}))
        outputs.append(logits.float().softmax(-1).cpu())
    return torch.cat(outputs)


@torch.inference_mode()
def predict_ours(model, tokenizer, titles, texts, batch_size, max_length, device):
    """Our pipeline, as `predict` runs it (solutions.predict.probabilities_by_chunk):
    tokenizer processes started once, the next chunk tokenized while the GPU works
    on this one, length-sorted batches."""
    from solutions.data import Record
    from solutions.predict import probabilities_by_chunk

    pages = [Record(str(i), title, text, []) for i, (title, text) in enumerate(zip(titles, texts))]
    chunks = probabilities_by_chunk(model, tokenizer, pages, batch_size=batch_size, max_length=max_length,
                                    device=device, workers=WORKERS)
    return torch.stack([p for _, probs, _ in chunks for p in probs])


def prediction_section(archive, sizes, n_labels, device, pages: int, limit):
    """Pages/s of prediction, tokenization included, with the same weights in both."""
    import tempfile

    from solutions.checkpoints import to_hf_state_dict
    from solutions.data import first_paragraph, read_livedoor
    from solutions.tokenization import Tokenizer, train_vocab

    records = read_livedoor(archive)[:limit]
    records = [records[i % len(records)] for i in range(pages)]
    titles = [r.title for r in records]
    texts = [first_paragraph(r.text) for r in records]
    ours_tok = Tokenizer(train_vocab(texts[:2000], sizes["vocab_size"]))
    sizes = {**sizes, "vocab_size": ours_tok.vocab_size}
    with tempfile.TemporaryDirectory() as tmp:
        ours_tok.save(tmp)
        hf_tok = transformers.AutoTokenizer.from_pretrained(tmp)
    ours = build("ours", sizes, n_labels, device).eval()
    theirs = build("hf-sdpa", sizes, n_labels, device).eval()
    theirs.load_state_dict(to_hf_state_dict(ours), strict=False)
    batch_size, max_length = 64, 256
    results, memory = {}, {}
    for name, fn, model, tok in (("hf-sdpa", predict_transformers, theirs, hf_tok),
                                 *((variant, predict_ours, ours, ours_tok) for variant in PREDICT_VARIANTS)):
        if name != "hf-sdpa" and not runs(name):  # transformers' figure is the reference of the ratio
            continue
        ours.unpad = name.endswith("+unpad")
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        sync(device)
        start = time.perf_counter()
        probs = fn(model, tok, titles, texts, batch_size, max_length, device)
        sync(device)
        seconds = time.perf_counter() - start
        results[name], memory[name] = (probs, pages / seconds), peak_memory(device)
        emit(section="predict", variant=name, pages=pages, pages_per_s=round(pages / seconds, 1),
             seconds=round(seconds, 2), peak_mem_gib=memory[name])
    theirs_probs, theirs_speed = results.pop("hf-sdpa")
    if not results:
        return
    for name, (probs, _) in results.items():
        agree = (probs.argmax(-1) == theirs_probs.argmax(-1)).float().mean().item()
        emit(section="predict", variant=name, same_label_share=round(agree, 4),
             max_prob_diff=round((probs - theirs_probs).abs().max().item(), 5))
    ratio = round(max(v[1] for v in results.values()) / theirs_speed, 3)
    emit(section="predict", ratio_ours_over_best_hf=ratio, best_ours=max(results, key=lambda k: results[k][1]))
    REACHED["predict"] = {"ratio": ratio, "ours_gib": min(memory[k] or 0 for k in results),
                          "hf_gib": memory["hf-sdpa"] or 0}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--device", default="auto")
    p.add_argument("--archive", default=str(LIVEDOOR), help="livedoor tar.gz (default: ../shared/data)")
    p.add_argument("--steps", type=int, help="timed steps per variant (default 20 GPU / 3 CPU)")
    p.add_argument("--labels", type=int, default=200)
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--extra", action="store_true",
                   help="also ours with cuDNN's attention and ours compiled whole without CUDA graphs (fixed "
                        "lengths); transformers without cuDNN's attention, ours packed without [PAD] (--unpad), "
                        "and ours with cuDNN's attention on batches padded to a multiple of 64 tokens (real "
                        "lengths); ours with each layer compiled and replayed as a CUDA graph (both); ours with "
                        "--unpad (prediction); minutes more")
    p.add_argument("--limit", type=int, help="livedoor articles to use (default all on GPU, 200 on CPU)")
    p.add_argument("--lengths", help="JSON file with saved livedoor lengths")
    p.add_argument("--save-lengths", help="write the livedoor lengths to this JSON file and exit")
    p.add_argument("--only", help="comma-separated sections: fixed512,whole,first,fixed128,predict")
    p.add_argument("--variants", help="comma-separated variants to run instead of the default ones (extra ones "
                   "included), e.g. hf-sdpa+compile,ours+compile,ours+unpad; prediction always runs hf-sdpa")
    p.add_argument("--profile", type=int, default=0, metavar="STEPS",
                   help="fixed-length sections: also profile STEPS more training steps of each variant: device "
                        "time by kind of kernel (matmul, attention, compiled fusions, optimizer, ...) and the "
                        "costliest kernels; the same work on both sides, so the kernels show where ours differs")
    p.add_argument("--predict-pages", type=int, help="pages for the prediction section (default 20000 GPU / 200 CPU)")
    args = p.parse_args(argv)
    sections = {"fixed512", "whole", "first", "predict", "fixed128"}
    wanted = set(args.only.split(",")) if args.only else sections
    if wanted - sections:
        p.error(f"--only: unknown section(s) {', '.join(sorted(wanted - sections))}; "
                f"choose from {', '.join(sorted(sections))}")

    global SELECTED, EXTRA
    SELECTED, EXTRA = set(args.variants.split(",")) if args.variants else None, args.extra
    fixed = [name for name, *_ in FIXED_VARIANTS + FIXED_EXTRA]
    real = [name for name, *_ in REAL_LENGTH_VARIANTS + REAL_LENGTH_EXTRA]
    known = set(fixed + real)
    if SELECTED and SELECTED - known:
        p.error(f"--variants: unknown variant(s) {', '.join(sorted(SELECTED - known))}; "
                f"choose from {', '.join(sorted(known))}")
    # a section none of whose variants of ours runs is left out (its ratio would need one)
    names_in = {"fixed512": fixed, "fixed128": fixed, "whole": real, "first": real, "predict": PREDICT_VARIANTS}
    wanted = {part for part in wanted if any(runs(name) for name in names_in[part] if name.startswith("ours"))}
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    gpu = device.type == "cuda"
    sizes = BASE if gpu else TINY
    steps = args.steps or (20 if gpu else 3)
    limit = args.limit or (None if gpu else 200)
    archive = Path(args.archive)
    allow_compile = gpu and not args.no_compile
    if args.save_lengths:
        lengths = {"whole": livedoor_lengths(archive, 512, False, limit),
                   "first": livedoor_lengths(archive, 256, True, limit)}
        Path(args.save_lengths).write_text(json.dumps(lengths))
        return
    emit(section="setup", device=torch.cuda.get_device_name() if gpu else "cpu", torch=torch.__version__,
         transformers=transformers.__version__, sizes=sizes, labels=args.labels, steps=steps,
         precision=str(amp_dtype(device) or "fp32").removeprefix("torch."))  # what autocast computes in

    began = time.perf_counter()
    shapes = [(32, 512), (128, 128)] if gpu else [(4, 64), (8, 32)]
    fixed512 = {}
    if "fixed512" in wanted:
        fixed512 = fixed_section(*shapes[0], sizes, args.labels, device, steps, allow_compile,
                                 profile=args.profile)

    settings = {"whole": (512, False), "first": (256, True)}
    if args.lengths:
        saved = {k: v for k, v in json.loads(Path(args.lengths).read_text()).items() if k in wanted}
    elif archive.exists():
        saved = {part: livedoor_lengths(archive, *settings[part], limit) for part in settings if part in wanted}
    else:
        saved = None
        emit(section="train_real_lengths", skipped=f"{archive} がありません")
    for part, lengths in (saved or {}).items():
        real_length_section(part, lengths, sizes, args.labels, device, steps, allow_compile, gpu)

    fixed128 = {}
    if "fixed128" in wanted:
        fixed128 = fixed_section(*shapes[1], sizes, args.labels, device, steps, allow_compile, profile=args.profile)

    try:
        import fugashi  # noqa: F401
    except ImportError:
        emit(section="predict", skipped="fugashi がないので予測 (トークン化込み) は測れません")
    else:
        if archive.exists() and "predict" in wanted:
            prediction_section(archive, sizes, args.labels, device,
                               args.predict_pages or (20000 if gpu else 200), limit)

    # last: a run cut short keeps every other figure
    for part, shape, earlier in (("fixed512", shapes[0], fixed512), ("fixed128", shapes[1], fixed128)):
        if part in wanted and any(runs(name) for name, *_ in FIXED_EXTRA):
            fixed_section(*shape, sizes, args.labels, device, steps, allow_compile, FIXED_EXTRA, earlier,
                          profile=args.profile)
    targets_line()
    emit(section="done", seconds=round(time.perf_counter() - began, 1))


if __name__ == "__main__":
    main()
