"""A pool of grading workers with a wall-clock limit per submission.

Each worker is a process (``autograder.grading_worker``) with its own copy of
the course and gradebook. The pool hands out one submission at a time; when a
submission runs past ``notebook_timeout`` the pool kills the worker together
with its kernel (and anything the kernel started), records a timeout and
starts a fresh worker, so one student never stops the class.
"""
from __future__ import annotations

import json
import os
import selectors
import shutil
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import psutil

from .grading_nbgrader import Limits, write_kernel_spec

WORKER_START_TIMEOUT = 180  # seconds for a worker to import nbgrader and open its gradebook


def kill_tree(pid: int) -> None:
    """SIGKILL a process and all its descendants (kernels run in their own sessions)."""
    try:
        root = psutil.Process(pid)
        procs = root.children(recursive=True) + [root]
    except psutil.NoSuchProcess:
        return
    for proc in procs:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=10)


JOB_MARK = "BERT_WORKSHOP_JOB"  # in every kernel's environment: "<run>:<job id>"


def kill_marked(prefix: str) -> int:
    """Kill the processes whose JOB_MARK starts with `prefix`: what a kernel left
    behind (e.g. a forked child that outlived it). Returns how many."""
    killed = 0
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.pid == os.getpid() or not proc.environ().get(JOB_MARK, "").startswith(prefix):
                continue
            proc.kill()
            killed += 1
        except (psutil.Error, OSError):
            continue
    return killed


@dataclass
class Job:
    id: str
    student: str
    assignment: str
    notebook: str
    autograded_out: str
    feedback_out: str
    timestamp: str | None = None

    run: str = ""

    def to_json(self) -> dict:
        return dict(self.__dict__)


class WorkerProcess:
    def __init__(self, index: int, generation: int, work_root: Path, base_course: Path, limits: Limits,
                 log_dir: Path, scratch_root: Path, workers: int):
        self.index = index
        self.name = f"worker-{index}-{generation}"
        self.dir = work_root / self.name
        course = self.dir / "course"
        shutil.copytree(base_course / "source", course / "source")
        shutil.copyfile(base_course / "gradebook.db", course / "gradebook.db")
        jupyter = self.dir / "jupyter"
        # Kernels work in scratch_root/w<index>; the other workers' scratch folders are hidden from them.
        scratch = scratch_root / f"w{index}"
        others = [str(scratch_root / f"w{j}") for j in range(workers) if j != index]
        for j in range(workers):
            (scratch_root / f"w{j}").mkdir(parents=True, exist_ok=True)
        limits = Limits(**{**limits.to_json(), "hide": [*limits.hide, *others]})
        write_kernel_spec(jupyter, limits)
        settings = {"course": str(course), "scratch": str(scratch), "limits": limits.to_json()}
        settings_path = self.dir / "worker.json"
        settings_path.write_text(json.dumps(settings, ensure_ascii=False), encoding="utf-8")
        env = dict(os.environ)
        env.update({
            "JUPYTER_PATH": str(jupyter),
            "JUPYTER_RUNTIME_DIR": str(self.dir / "runtime"),
            "JUPYTER_CONFIG_DIR": str(self.dir / "jupyter-config"),
            "JUPYTER_PLATFORM_DIRS": "1",
            "IPYTHONDIR": str(self.dir / "ipython"),
            "PYTHONWARNINGS": "ignore",
        })
        env.pop("JUPYTER_DATA_DIR", None)
        scripts = str(Path(sys.executable).parent)
        env["PATH"] = scripts + os.pathsep + env.get("PATH", "")
        self.log_path = log_dir / f"{self.name}.log"
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "autograder.grading_worker", str(settings_path)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, env=env,
            cwd=str(self.dir), start_new_session=True)
        self.ready = False
        self.job: Job | None = None
        self.deadline = time.monotonic() + WORKER_START_TIMEOUT
        self.buffer = b""

    def send(self, job: Job, timeout: float) -> None:
        self.job = job
        self.deadline = time.monotonic() + timeout
        self.proc.stdin.write((json.dumps(job.to_json(), ensure_ascii=False) + "\n").encode("utf-8"))
        self.proc.stdin.flush()

    def read_lines(self) -> list[dict] | None:
        """Complete JSON lines available now; None when the worker has exited."""
        chunk = os.read(self.proc.stdout.fileno(), 65536)
        if not chunk:
            return None
        self.buffer += chunk
        *lines, self.buffer = self.buffer.split(b"\n")
        return [json.loads(line) for line in lines if line.strip()]

    def stop(self, kill: bool = False) -> None:
        if kill:
            kill_tree(self.proc.pid)
        else:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=60)
            except (subprocess.TimeoutExpired, BrokenPipeError, OSError):
                kill_tree(self.proc.pid)
        self.log.close()


def run_jobs(jobs: list[Job], *, workers: int, work_root: Path, scratch_root: Path, base_course: Path,
             limits: Limits, log_dir: Path, progress=None) -> dict[str, dict]:
    """Grade every job; returns {job id: result}. Results do not depend on `workers`.

    work_root holds the workers' courses (hidden from kernels); kernels work in
    scratch_root/w<worker>, which must lie outside work_root."""
    results: dict[str, dict] = {}
    if not jobs:
        return results
    run = f"{os.getpid()}-{time.time_ns()}"
    for job in jobs:
        job.run = run
    pending = deque(jobs)
    generation = 0
    selector = selectors.DefaultSelector()

    def spawn(index: int) -> WorkerProcess:
        nonlocal generation
        generation += 1
        worker = WorkerProcess(index, generation, work_root, base_course, limits, log_dir, scratch_root, workers)
        selector.register(worker.proc.stdout, selectors.EVENT_READ, worker)
        return worker

    def retire(worker: WorkerProcess, kill: bool) -> None:
        selector.unregister(worker.proc.stdout)
        worker.stop(kill=kill)
        shutil.rmtree(worker.dir, ignore_errors=True)

    def finish(job: Job, result: dict) -> None:
        results[job.id] = result
        if progress:
            progress(job, result)

    workers = max(1, min(workers, len(jobs)))
    pool = [spawn(i) for i in range(workers)]
    try:
        while pending or any(w.job for w in pool):
            for worker in pool:
                if worker.ready and worker.job is None and pending:
                    worker.send(pending.popleft(), limits.notebook_timeout)
            now = time.monotonic()
            wait = max(0.05, min(w.deadline for w in pool) - now)
            for key, _ in selector.select(timeout=min(wait, 5.0)):
                worker = key.data
                lines = worker.read_lines()
                if lines is None:  # the worker itself died
                    job = worker.job
                    if job is not None:
                        finish(job, {"id": job.id, "ok": False, "status": "grader_error", "grades": {},
                                     "reasons": [f"採点プロセスが異常終了しました (ログ: {worker.log_path.name})"]})
                    elif not worker.ready:
                        raise RuntimeError(f"採点プロセスを起動できませんでした: {worker.log_path}")
                    index = pool.index(worker)
                    retire(worker, kill=True)
                    if pending or any(w.job for w in pool if w is not worker):
                        pool[index] = spawn(worker.index)
                    else:
                        pool.pop(index)
                    continue
                for message in lines:
                    if message.get("ready"):
                        worker.ready = True
                        worker.deadline = float("inf")
                    elif worker.job is not None and message.get("id") == worker.job.id:
                        job, worker.job = worker.job, None
                        worker.deadline = float("inf")
                        finish(job, message)
            now = time.monotonic()
            for index, worker in enumerate(list(pool)):
                if now <= worker.deadline:
                    continue
                if worker.job is None:
                    raise RuntimeError(f"採点プロセスが {WORKER_START_TIMEOUT} 秒以内に起動しませんでした: {worker.log_path}")
                job = worker.job
                for partial in (job.autograded_out, job.feedback_out):
                    Path(partial).unlink(missing_ok=True)
                finish(job, {"id": job.id, "ok": False, "status": "timeout", "grades": {},
                             "reasons": [f"ノートブック全体の制限時間 ({limits.notebook_timeout} 秒) を超えたので"
                                         "採点を打ち切りました (無限ループなど)"]})
                retire(worker, kill=True)
                pool[index] = spawn(worker.index) if pending else None
            pool = [w for w in pool if w is not None]
            if not pool and pending:
                pool = [spawn(0)]
    finally:
        for worker in pool:
            try:
                retire(worker, kill=bool(worker.job))
            except Exception:
                kill_tree(worker.proc.pid)
        selector.close()
        kill_marked(run + ":")
    return results
