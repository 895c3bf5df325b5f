"""bench/gpu.py runs on the CPU with tiny sizes (no timing is asserted)."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_benchmark_smoke_on_cpu(shared_data):
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu.py"), "--device", "cpu", "--steps", "1",
                             "--limit", "40", "--labels", "9", "--predict-pages", "60"],
                            capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [json.loads(x) for x in result.stdout.splitlines()]
    sections = {x["section"] for x in lines}
    assert {"setup", "train_fixed_4x64", "train_livedoor_whole", "train_livedoor_first", "predict"} <= sections
    agreement = {x["variant"]: x["same_label_share"] for x in lines if "same_label_share" in x}
    assert agreement == {"ours": 1.0, "ours+unpad": 1.0}  # same weights, same answers
    for section in ("train_livedoor_whole", "train_livedoor_first"):
        assert {x.get("variant") for x in lines if x["section"] == section} >= {"hf-sdpa", "ours", "ours+unpad"}
    ours_first = next(x for x in lines if x["section"] == "train_livedoor_first" and x.get("variant") == "ours")
    theirs_first = next(x for x in lines if x["section"] == "train_livedoor_first" and x.get("variant") == "hf-sdpa")
    # Length bucketing leaves less padding than shuffled pad-to-longest batches.
    assert ours_first["real_token_share"] > theirs_first["real_token_share"]
    assert all(x["seq_per_s"] > 0 for x in lines if "seq_per_s" in x)
    checks = [x for x in lines if x.get("check") == "unpad_same_logits"]
    assert len(checks) == 2 and all(x["same_argmax"] and x["max_abs_diff"] < 1e-4 for x in checks)
    assert any(x["pads"] > 0 for x in checks)  # a batch with [PAD] to take out


def test_extra_variants_smoke_on_cpu(shared_data):
    """--extra: ours on batches padded to a multiple of 64 tokens (cuDNN's attention on a GPU)."""
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu.py"), "--device", "cpu", "--steps", "2",
                             "--limit", "40", "--labels", "9", "--only", "first", "--extra"],
                            capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = {x["variant"]: x for x in map(json.loads, result.stdout.splitlines()) if "variant" in x}
    assert lines["ours+cudnn64"]["seq_per_s"] > 0
    # the same articles, more padding: every batch is padded up to a multiple of 64
    assert lines["ours+cudnn64"]["real_token_share"] < lines["ours"]["real_token_share"]
