"""bench/gpu_session.sh's two-call livedoor run (DETACH, then COLLECT), on the CPU with
a tiny model and a small corpus in the livedoor layout written here."""
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY_RUN = ("--device cpu --size tiny --vocab-size 800 --pretrain-minutes 0.1 --pretrain-max-length 64 "
            "--max-length 64 --epochs 1")


def session(tmp_path, path_prefix=None, **env):
    environment = {**os.environ, "OUT": str(tmp_path / "out"), "RUN": str(tmp_path / "run"),
                   "PY": sys.executable, "ARCHIVE": str(tmp_path / "ldcc.tar.gz"), **env}
    if path_prefix:
        environment["PATH"] = f"{path_prefix}:{environment['PATH']}"
    start = time.monotonic()
    result = subprocess.run(["bash", str(ROOT / "bench" / "gpu_session.sh")], env=environment, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    return result, time.monotonic() - start


def collected(tmp_path) -> dict:
    out = tmp_path / "out"
    assert (out / "curves.tgz").exists() and (out / "livedoor.log").exists()
    result = json.loads((out / "livedoor.json").read_text())
    assert 0 <= result["ours"]["dev_micro_f1"] <= 100 and result["pretrain"]["steps"] > 0
    # The confusion matrix comes from the best epoch's dev answers: its diagonal is the reported F1.
    confusion = result["ours"]["confusion"]["rows_true_columns_predicted"]
    assert sum(map(sum, confusion)) == result["dev"]
    hits = sum(confusion[i][i] for i in range(len(confusion)))
    assert 100 * hits / result["dev"] == pytest.approx(result["ours"]["dev_micro_f1"], abs=0.01)
    assert set(result["ours"]["f1_by_label"]) == set(result["ours"]["confusion"]["labels"])
    return result


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="a detached run survives its call only for root")
def test_detached_run_outlives_the_first_call_and_is_collected(tmp_path, livedoor_archive):
    livedoor_archive(tmp_path / "ldcc.tar.gz")
    # The first call returns at its budget (and through a pipe: nothing may hold its stdout) ...
    first, seconds = session(tmp_path, QUALITY_ONLY="1", DETACH="1", LIVEDOOR_SECONDS="120", BUDGET="12",
                             LIVEDOOR_ARGS=TINY_RUN)
    pid = int((tmp_path / "run" / "pid").read_text())
    assert "COLLECT=1" in first.stderr and not (tmp_path / "run" / "exit").exists(), first.stderr[-1000:]
    os.kill(pid, 0)  # ... while the run goes on
    # ... and the next call waits for it and brings the results.
    second, _ = session(tmp_path, COLLECT="1", BUDGET="300")
    assert "ended (exit 0)" in second.stderr, second.stderr[-1000:]
    collected(tmp_path)
    assert seconds < json.loads((tmp_path / "out" / "livedoor.json").read_text())["seconds"]


@pytest.mark.slow
def test_detach_runs_inline_when_not_root(tmp_path, livedoor_archive):
    livedoor_archive(tmp_path / "ldcc.tar.gz")
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "id").write_text("#!/bin/sh\necho 1000\n")
    (shim / "id").chmod(stat.S_IRWXU)
    result, _ = session(tmp_path, path_prefix=shim, QUALITY_ONLY="1", DETACH="1", LIVEDOOR_SECONDS="120",
                        BUDGET="300", LIVEDOOR_ARGS=TINY_RUN)
    assert "DETACH: not root" in result.stderr
    collected(tmp_path)  # everything came back in this one call


def test_a_collect_call_cut_short_keeps_what_the_run_wrote(tmp_path):
    """If the device stops the COLLECT call at its limit, $OUT still holds the run's latest
    JSON: the wait copies it every 30 s, not only at the end."""
    run, out = tmp_path / "run", tmp_path / "out"
    run.mkdir()
    still_running = subprocess.Popen(["sleep", "120"])
    try:
        (run / "pid").write_text(str(still_running.pid))
        env = {**os.environ, "OUT": str(out), "RUN": str(run), "COLLECT": "1", "BUDGET": "300"}
        call = subprocess.Popen(["bash", str(ROOT / "bench" / "gpu_session.sh")], env=env, cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(3)
        (run / "livedoor.json").write_text('{"pretrain": {"steps": 7}}\n')  # a stage ends during the wait
        time.sleep(33)
        os.killpg(call.pid, 9)  # the device's limit: no cleanup, no final collect
        call.wait()
        assert json.loads((out / "livedoor.json").read_text()) == {"pretrain": {"steps": 7}}
    finally:
        still_running.kill()
