"""Small helpers shared by the book's chapters (plots and a tiny pre-trained model).

The BERT itself lives in ``solutions/``; nothing here re-implements it. The
chapters import this module from ``book/`` (their working directory at build time).
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import warnings
from pathlib import Path

# Progress bars would only clutter the pages. tqdm reads TQDM_DISABLE when it is
# first imported; its notebook flavour (chosen by tqdm.auto when ipywidgets is
# installed) ignores it and would put a live widget, and CDN scripts, on the page.
os.environ.setdefault("TQDM_DISABLE", "1")
import tqdm.auto  # noqa: E402
import tqdm.std  # noqa: E402

tqdm.auto.tqdm = tqdm.std.tqdm

BOOK = Path(__file__).resolve().parent
CACHE = BOOK / "_build" / "bookkit"   # models trained for the book, reused between builds


def setup(seed: int = 0):
    """Reproducible and quiet: seed, two CPU threads, Japanese fonts in matplotlib."""
    import matplotlib
    import matplotlib.pyplot as plt
    import matplotlib_fontja  # noqa: F401  (registers IPAexGothic and selects it)
    import torch

    warnings.filterwarnings("ignore", category=UserWarning, module="torch")
    torch.manual_seed(seed)
    torch.set_num_threads(1)  # tiny models: one thread is as fast, and never oversubscribes
    matplotlib.rcParams.update({
        "figure.dpi": 110,
        "savefig.dpi": 110,
        "figure.figsize": (6.4, 3.6),
        "axes.grid": False,
        "axes.unicode_minus": False,
    })
    return torch


def heatmap(ax, matrix, xlabels, ylabels=None, title=None, cmap="Blues", vmax=None, fontsize=9,
            colorbar=True, annotate=False):
    """Draw a (queries × keys) matrix with token labels on both axes."""
    import numpy as np

    m = np.asarray(matrix, dtype=float)
    image = ax.imshow(m, cmap=cmap, vmin=0, vmax=vmax if vmax is not None else max(m.max(), 1e-9))
    ylabels = xlabels if ylabels is None else ylabels
    ax.set_xticks(range(len(xlabels)), xlabels, rotation=90, fontsize=fontsize)
    ax.set_yticks(range(len(ylabels)), ylabels, fontsize=fontsize)
    if title:
        ax.set_title(title, fontsize=fontsize + 2)
    if annotate:
        for i in range(m.shape[0]):
            for j in range(m.shape[1]):
                ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=fontsize - 1,
                        color="white" if m[i, j] > 0.6 * m.max() else "black")
    if colorbar:
        ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    return image


def demo_texts(n_pages: int = 600, seed: int = 0) -> list[str]:
    """Body texts of the synthetic SHINRA-style demo corpus (solutions.data)."""
    from solutions.data import make_demo_corpus

    return [record.text for record in make_demo_corpus(n_pages=n_pages, seed=seed)]


def _source_digest() -> str:
    """A digest of the reference code that shapes the pre-trained model: when it
    changes, the cached model is trained again."""
    import solutions

    root = Path(solutions.__file__).parent
    h = hashlib.sha1()
    for name in ("pretrain.py", "models.py", "layers.py", "attention.py", "embeddings.py", "mlm.py",
                 "tokenization.py", "checkpoints.py", "config.py", "data/demo.py"):
        path = root / name
        h.update(path.read_bytes() if path.exists() else b"")
    return h.hexdigest()


TINY_MLM = dict(n_pages=600, steps=400, vocab_size=1000, max_length=32, batch_size=64, lr=2e-3, seed=0)


@contextlib.contextmanager
def _keep_matplotlib_backend():
    """solutions.training draws its learning curves with the Agg backend and
    switches matplotlib to it; switch back, or the page's figures would vanish."""
    import matplotlib
    import matplotlib.pyplot as plt

    backend = matplotlib.get_backend()
    try:
        yield
    finally:
        if matplotlib.get_backend() != backend:
            plt.switch_backend(backend)


def tiny_pretrained_dir(**overrides) -> Path:
    """Where `tiny_pretrained` keeps its checkpoint (the key covers the settings
    and the reference code, so a change in either trains a new model)."""
    settings = {**TINY_MLM, **overrides}
    key = hashlib.sha1(json.dumps([settings, _source_digest()], sort_keys=True).encode()).hexdigest()[:10]
    return CACHE / f"tiny-mlm-{key}"


def tiny_pretrained(**overrides):
    """A tiny BERT pre-trained by MLM on the demo corpus, for the figures of the book.

    Trained once with ``solutions.pretrain.pretrain`` (under a minute on one CPU
    core) and kept under ``_build/bookkit/``; later calls load the checkpoint.
    Returns ``(model, tokenizer, summary)``: a ``BertForMaskedLM`` in eval mode,
    its ``Tokenizer`` and the pre-training summary.
    """
    from solutions.checkpoints import load_model
    from solutions.models import BertForMaskedLM
    from solutions.pretrain import PretrainSettings, pretrain
    from solutions.tokenization import Tokenizer

    s = {**TINY_MLM, **overrides}
    out = tiny_pretrained_dir(**overrides)
    if not (out / "pretrain_summary.json").exists():
        settings = PretrainSettings(size="tiny", vocab_size=s["vocab_size"], max_length=s["max_length"],
                                    batch_size=s["batch_size"], lr=s["lr"], max_steps=s["steps"],
                                    seed=s["seed"], device="cpu")
        with contextlib.redirect_stderr(io.StringIO()), _keep_matplotlib_backend():
            pretrain(demo_texts(s["n_pages"], s["seed"]), out, settings)
    model, _ = load_model(out, BertForMaskedLM)
    model.eval()
    summary = json.loads((out / "pretrain_summary.json").read_text(encoding="utf-8"))
    return model, Tokenizer.from_pretrained(out), summary


def table(header, rows, align=None):
    """A Markdown table for the page (the build renders it as an HTML table)."""
    from IPython.display import Markdown

    def cell(value):
        text = f"{value:.4g}" if isinstance(value, float) else str(value)
        return text.replace("|", "\\|").replace("\n", " ")

    align = align or ["l"] * len(header)
    rule = {"l": ":--", "r": "--:", "c": ":-:"}
    lines = ["| " + " | ".join(cell(h) for h in header) + " |",
             "| " + " | ".join(rule[a] for a in align) + " |"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return Markdown("\n".join(lines))


def shell(command: str, *, cwd: Path = BOOK, max_lines: int = 40, timeout: int = 600) -> None:
    """Run a ``bert-workshop …`` command line as a reader would in a terminal and
    print it with its output (stdout and stderr together) and the time it took.

    A progress bar redraws its line with carriage returns; as in a terminal, only
    the last state of each line is kept. Long outputs show their first and last
    lines. A failure raises, so the book's build fails with it.
    """
    import shlex
    import subprocess
    import sys
    import time

    argv = shlex.split(command)
    if argv[0] == "bert-workshop":  # the one installed next to this Python
        argv[0] = str(Path(sys.executable).with_name("bert-workshop"))
    # One thread: as fast for the tiny models of the book, and no contention with the kernel.
    env = {**os.environ, "TQDM_DISABLE": "1", "PYTHONWARNINGS": "ignore", "COLUMNS": "100",
           "OMP_NUM_THREADS": "1"}
    started = time.time()
    proc = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=timeout)  # bytes: text mode would turn each "\r" into a new line
    seconds = time.time() - started
    output = proc.stdout.decode("utf-8", errors="replace").replace("\r\n", "\n")
    lines = [_last_redraw(line) for line in output.rstrip("\n").split("\n")]
    if len(lines) > max_lines:
        half = max_lines // 2
        lines = lines[:half] + [f"… ({len(lines) - max_lines} 行省略) …"] + lines[-half:]
    print("$ " + _wrap_command(command))
    print("\n".join(lines))
    print(f"[{seconds:.1f} 秒]")
    if proc.returncode != 0:
        raise RuntimeError(f"コマンドが失敗しました (終了コード {proc.returncode}): {command}")


def _last_redraw(line: str) -> str:
    """What a terminal shows of a line redrawn with carriage returns."""
    parts = [part for part in line.split("\r") if part.strip()]
    return parts[-1] if parts else ""


def _wrap_command(command: str, width: int = 78) -> str:
    """A long command line broken before its options, with shell continuations."""
    if len(command) <= width:
        return command
    parts = re.split(r" (?=--)", command)
    lines, line = [], parts[0]
    for part in parts[1:]:
        if len(line) + 1 + len(part) > width - 2:
            lines.append(line + " \\")
            line = "    " + part
        else:
            line += " " + part
    return "\n".join([*lines, line])
