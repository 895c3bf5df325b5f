"""bench/livedoor.py's page-by-page comparison of two classifiers on the same dev split."""
import importlib.util
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def livedoor_bench():
    saved = list(sys.path)  # the script puts the project root first on sys.path
    spec = importlib.util.spec_from_file_location("bench_livedoor", ROOT / "bench" / "livedoor.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.path[:] = saved
    return module


def test_paired_comparison_against_the_binomial_and_normal_laws(livedoor_bench):
    """1,000 pages: both right on 900, only ours on 40, only theirs on 25, both wrong on 35."""
    gold = ["a"] * 1000
    ours = ["a"] * 940 + ["b"] * 60
    theirs = ["a"] * 900 + ["b"] * 40 + ["a"] * 25 + ["b"] * 35
    result = livedoor_bench.paired_comparison(gold, ours, theirs)

    assert (result["ours"], result["theirs"], result["difference"]) == (94.0, 92.5, 1.5)
    assert (result["only_ours_right"], result["only_theirs_right"]) == (40, 25)
    # McNemar's exact test: two-sided binomial tail of 25 or fewer of the 65 discordant pages
    tail = sum(math.comb(65, k) for k in range(26)) / 2 ** 65
    assert result["mcnemar_exact_p"] == pytest.approx(2 * tail, abs=1e-4)
    # The bootstrap interval against the normal law of a paired difference of proportions
    n, b, c = 1000, 40 / 1000, 25 / 1000
    sd = 100 * math.sqrt((b + c - (b - c) ** 2) / n)
    low, high = result["bootstrap_95"]
    assert (low + high) / 2 == pytest.approx(1.5, abs=0.15)
    assert (high - low) / 2 == pytest.approx(1.96 * sd, rel=0.1)
    assert 0.9 < result["bootstrap_share_ours_better"] < 1


def test_identical_answers_compare_as_equal(livedoor_bench):
    gold, answers = ["a", "b", "c", "a"], ["a", "b", "a", "a"]
    result = livedoor_bench.paired_comparison(gold, answers, answers)
    assert result["difference"] == 0 and result["mcnemar_exact_p"] == 1.0
    assert result["bootstrap_95"] == [0, 0] and result["bootstrap_share_ours_better"] == 0


def run_compare(tmp_path, archive, predictions):
    return subprocess.run([sys.executable, str(ROOT / "bench" / "livedoor.py"), "--archive", str(archive),
                           "--skip-bert", "--compare", str(predictions), "--json", str(tmp_path / "result.json")],
                          capture_output=True, text=True, timeout=300)


def test_compare_reads_an_earlier_runs_answers_by_page(tmp_path, livedoor_archive, livedoor_bench):
    from solutions.data import read_livedoor, split_train_dev

    archive = livedoor_archive(tmp_path / "ldcc.tar.gz", n_pages=120)
    _, dev = split_train_dev(read_livedoor(archive, cache_dir=tmp_path / "cache"), dev_fraction=0.2, seed=0)
    labels = sorted({r.labels[0] for r in dev})
    # Right on every page but the first three, written in reverse order: matched by page id
    rows = [{"page_id": r.page_id, "labels": [r.labels[0] if i >= 3 else next(x for x in labels if x != r.labels[0])],
             "probs": [0.9]} for i, r in enumerate(dev)]
    predictions = tmp_path / "dev_predictions.jsonl"
    predictions.write_text("".join(json.dumps(row) + "\n" for row in reversed(rows)))

    result = run_compare(tmp_path, archive, predictions)
    assert result.returncode == 0, result.stderr[-2000:]
    compared = json.loads((tmp_path / "result.json").read_text())["compared_vs_tfidf"]
    assert compared["pages"] == len(dev)
    assert compared["ours"] == round(100 * (len(dev) - 3) / len(dev), 2)
    assert compared["theirs"] == json.loads((tmp_path / "result.json").read_text())["tfidf_logreg"]["dev_micro_f1"]

    # A broken line is reported with its file and line; a missing page, with the file
    lines = predictions.read_text().splitlines()
    broken = tmp_path / "broken.jsonl"
    broken.write_text("\n".join(lines[:4] + ['{"page_id": "x"'] + lines[5:]) + "\n")
    result = run_compare(tmp_path, archive, broken)
    assert result.returncode != 0 and f"{broken}:5" in result.stderr and "Traceback" not in result.stderr
    short = tmp_path / "short.jsonl"
    short.write_text("\n".join(lines[1:]) + "\n")
    result = run_compare(tmp_path, archive, short)
    assert result.returncode != 0 and str(short) in result.stderr and "一致しません" in result.stderr


def test_the_gpu_sessions_recipe_parses(livedoor_bench):
    """A flag bench/livedoor.py does not know would cost a whole GPU session: the command
    bench/gpu_session.sh builds (bash expands it here) must parse."""
    script = (ROOT / "bench" / "gpu_session.sh").read_text()
    block = re.search(r"^cmd=\(.*?\}\)$", script, re.S | re.M).group(0)
    expanded = subprocess.run(["bash", "-c", "left=700 PY=python3 ARCHIVE=a.tar.gz RUN=run minutes=9 deadline=10 "
                               f"compile=--compile\n{block}\nprintf '%s\\0' \"${{cmd[@]}}\""],
                              capture_output=True, text=True, check=True).stdout.split("\0")[:-1]
    assert expanded[:4] == ["timeout", "692", "python3", "bench/livedoor.py"]
    args = livedoor_bench.parser().parse_args(expanded[4:])
    assert args.device == "cuda" and args.compile and args.skip_tfidf and args.pretrain_minutes == 9
