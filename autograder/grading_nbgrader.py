"""nbgrader configured for grading a class: limits, isolation, feedback without hidden tests.

Used inside a grading worker process (``autograder.grading_worker``), each with
its own copy of the course folder and gradebook.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat import NotebookNode
from nbgrader.preprocessors import Execute
from traitlets import Unicode

from .notebooks import nbgrader_config

KERNEL_NAME = "bert-workshop-grader"
KERNEL_SCRIPT = Path(__file__).resolve().with_name("grading_kernel.py")

# Error names the grader puts into (or finds in) executed notebooks.
KERNEL_DIED = "KernelDied"
NOT_RUN = "NotRun"
CELL_TIMEOUT = "CellTimeoutError"  # nbgrader's Execute.error_on_timeout


@dataclass
class Limits:
    cell_timeout: int = 180          # seconds per cell (nbgrader Execute.timeout)
    notebook_timeout: int = 600      # seconds per submission, enforced by the pool
    memory_limit: int = 4 * 2**30    # bytes of private memory for the kernel (RLIMIT_DATA; 0: none)
    file_size_limit: int = 2**30     # largest file the kernel may write
    device: str = "cpu"              # "cpu" or "cuda"
    threads: int = 1                 # OMP threads per kernel
    hide: list[str] = field(default_factory=list)   # folders the kernel must not see
    namespaces: bool = True          # hide them with user + mount namespaces where possible

    def to_json(self) -> dict:
        return asdict(self)


def write_kernel_spec(jupyter_dir: Path, limits: Limits) -> Path:
    """A kernel spec that starts kernels through grading_kernel.py with the limits."""
    spec_dir = Path(jupyter_dir) / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    env = {
        "BW_MEMORY_LIMIT": str(limits.memory_limit),
        "BW_FILE_SIZE_LIMIT": str(limits.file_size_limit),
        "BW_HIDE": os.pathsep.join(limits.hide),
        "BW_NAMESPACES": "1" if limits.namespaces else "0",
        "BW_BLOCK_MODULES": "solutions,autograder",
        "BERT_WORKSHOP_DEVICE": limits.device,
        "BERT_WORKSHOP_GRADING": "1",
        "OMP_NUM_THREADS": str(limits.threads),
        "MKL_NUM_THREADS": str(limits.threads),
        "PYTHONHASHSEED": "0",
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    }
    if limits.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""  # a submission that asks for CUDA runs on the CPU
    spec = {
        # Plain tracebacks: each frame shows its failing line only, never the lines
        # around it (which, in a test cell, could be the hidden tests).
        "argv": [sys.executable, "-I", str(KERNEL_SCRIPT), "-f", "{connection_file}",
                 "--InteractiveShell.xmode=Plain"],
        "display_name": "Python 3 (bert-workshop grader)",
        "language": "python",
        "interrupt_mode": "signal",
        "env": env,
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1) + "\n", encoding="utf-8")
    return spec_dir


UNIX_SOCKET_PATH_MAX = 107  # bytes of a socket's path (sun_path, less its final NUL)


class IsolatedExecute(Execute):
    """nbgrader's Execute, with two changes.

    - The kernel runs in a scratch folder holding a copy of the assignment's
      other files, not in the course folder where the notebook with its
      hidden tests is written.
    - A kernel that dies (a crash, os._exit, the memory limit) does not fail
      the whole submission: the cell gets a ``KernelDied`` error, the cells
      after it a ``NotRun`` error, and the grades of the cells that ran before
      stay. Likewise a kernel that stays busy after a cell's time limit
      (student code that ignores the interrupt): ``CellTimeoutError`` on that
      cell, ``NotRun`` after it; the kernel is then shut down.
    """

    scratch_root = Unicode("", help="Folder for the kernels' working folders").tag(config=True)

    def preprocess(self, nb: NotebookNode, resources=None, km=None):
        resources = resources if resources is not None else {}
        metadata = resources.setdefault("metadata", {})
        notebook_dir = metadata.get("path") or os.getcwd()
        root = self.scratch_root or None
        if root:
            Path(root).mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix="run-", dir=root))
        for item in Path(notebook_dir).iterdir():
            if item.suffix == ".ipynb" or item.name in ("timestamp.txt", ".ipynb_checkpoints"):
                continue
            if item.is_dir():
                shutil.copytree(item, scratch / item.name, dirs_exist_ok=True)
            elif item.is_file():
                shutil.copy2(item, scratch / item.name)
        metadata["path"] = str(scratch)
        self._scratch = scratch
        self._dead_at = None
        try:
            return super().preprocess(nb, resources, km)
        finally:
            metadata["path"] = notebook_dir
            shutil.rmtree(scratch, ignore_errors=True)

    def create_kernel_manager(self):
        """The kernel talks to us over Unix sockets in its working folder rather than TCP
        on 127.0.0.1, where every kernel on the machine could reach every other one (and
        listen to its output: the hidden tests as they run). Without TCP, the kernel is
        started without any network (grading_kernel.py). A path too long for a socket
        keeps TCP."""
        km = super().create_kernel_manager()
        scratch = getattr(self, "_scratch", None)  # set by preprocess, before the kernel starts
        prefix = str(scratch / ".kernel-ipc") if scratch else ""
        if prefix and len(prefix.encode()) + 6 < UNIX_SOCKET_PATH_MAX:  # + "-" and a port number
            km.transport = "ipc"
            km.ip = prefix
        return km

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code":
            return cell, self.resources
        if self._dead_at is not None:
            cell.outputs = [error_output(NOT_RUN, f"セル {self._dead_at + 1} でカーネルが停止・応答しなくなったため"
                                                  "実行されませんでした")]
            return cell, self.resources
        try:
            if cell.metadata.get("nbgrader", {}).get("grade"):
                # Test cells are not kept in the kernel's history (In, _ih), where
                # later student code could read the hidden tests back.
                self._check_assign_resources(resources)
                return self.execute_cell(cell, index, store_history=False), self.resources
            return super().preprocess_cell(cell, resources, index)
        except DeadKernelError:
            self._dead_at = index
            cell.outputs.append(error_output(
                KERNEL_DIED, "このセルの実行中にカーネルが停止しました (クラッシュ、os._exit、メモリの使いすぎなど)"))
            return cell, self.resources
        except CellTimeoutError:
            self._dead_at = index
            cell.outputs.append(error_output(
                CELL_TIMEOUT, f"このセルが制限時間 ({self.timeout} 秒) を超え、中断もできませんでした"))
            return cell, self.resources

    async def _async_cleanup_kernel(self):
        try:
            await super()._async_cleanup_kernel()
        except Exception:  # a dead kernel may not shut down cleanly
            pass


def error_output(ename: str, evalue: str) -> NotebookNode:
    return NotebookNode(output_type="error", ename=ename, evalue=evalue,
                        traceback=[f"\x1b[0;31m{ename}\x1b[0m: {evalue}"])


def grading_config(course_root: Path, scratch_root: Path, limits: Limits):
    """The traitlets Config for autograde + generate_feedback in one worker's course."""
    from nbconvert.preprocessors import ClearMetadataPreprocessor, CSSHTMLHeaderPreprocessor
    from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, ClearHiddenTests, GetGrades,
                                        IgnorePattern, LimitOutput, SaveAutoGrades)

    c = nbgrader_config(course_root, **{"NbGraderAPI.log_level": "INFO"})
    c.Autograde.autograde_preprocessors = [IsolatedExecute, IgnorePattern, ClearMetadataPreprocessor,
                                           LimitOutput, SaveAutoGrades, AssignLatePenalties, CheckCellMetadata]
    c.IsolatedExecute.scratch_root = str(scratch_root)
    c.IsolatedExecute.timeout = int(limits.cell_timeout)
    c.IsolatedExecute.kernel_name = KERNEL_NAME
    c.IsolatedExecute.startup_timeout = 120
    c.IsolatedExecute.shutdown_kernel = "immediate"  # nothing to save: do not wait for a polite exit
    c.Execute.timeout = int(limits.cell_timeout)
    c.OverwriteCells.add_missing_cells = True
    c.GenerateFeedback.preprocessors = [GetGrades, CSSHTMLHeaderPreprocessor, ClearHiddenTests]
    return c
