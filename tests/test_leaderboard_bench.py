"""bench/score.py runs (a small size; the 10^6-page timing is not a test)."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_benchmark_script_smoke():
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "score.py"), "--pages", "2000",
                             "--split"], capture_output=True, text=True, check=True, cwd=ROOT)
    report = json.loads(result.stdout)
    assert report["pages"] == 2000
    assert 0 < report["missing_pages"] < 100
    assert 50 < report["micro_f1"] < 100
    assert report["score_s"] > 0 and report["score_cpu_s"] > 0
    assert "score_with_split_s" in report
