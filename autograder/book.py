"""`bert-workshop book`: build the Jupyter Book (book/) into HTML, offline.

Every chapter's code runs during the build (myst-nb, cached under
book/_build/.jupyter_cache, so a rebuild after a prose change only re-renders).
Sphinx warnings (a broken reference, a missing image, ...) and errors in a code
cell fail the build.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BOOK_DIR = ROOT / "book"


# Jupyter Book's builders and the folder (under book/_build/) each writes.
OUTPUT_FOLDERS = {"html": "html", "dirhtml": "dirhtml", "singlehtml": "singlehtml",
                  "linkcheck": "linkcheck", "latex": "latex", "pdflatex": "latex", "pdfhtml": "pdf"}


class BookBuildError(RuntimeError):
    """The build failed; the message ends with the tail of the build log."""


def jupyter_book_command() -> list[str]:
    """Jupyter Book of the same environment as this Python."""
    script = Path(sys.executable).with_name("jupyter-book")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "jupyter_book.cli.main"]


def build_env() -> dict[str, str]:
    """The environment of the build: this Python's bin/ first on PATH (the
    kernel that runs the chapters must be the one with torch and solutions),
    no progress bars, no debugger chatter."""
    env = dict(os.environ)
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    env.setdefault("TQDM_DISABLE", "1")
    env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    env.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
    return env


# The code the chapters run. Jupyter Book re-executes a chapter only when its own
# cells change; when this code changes, every chapter must run again.
CODE_GLOBS = ("solutions/**/*.py", "solutions/**/*.tsv", "autograder/cli.py", "autograder/pipeline.py",
              "autograder/leaderboard/**/*.py", "book/bookkit.py")


def code_digest(root: Path = ROOT) -> str:
    """A digest of the code that the chapters execute (see CODE_GLOBS)."""
    h = hashlib.sha256()
    for pattern in CODE_GLOBS:
        for path in sorted(root.glob(pattern)):
            if "__pycache__" in path.parts:
                continue
            h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def forget_stale_outputs(book_dir: Path) -> bool:
    """Drop the cached outputs when the executed code changed since the last
    build, so that every number and figure comes from the current code.
    Returns True when something was dropped."""
    build = book_dir / "_build"
    stamp = build / "code-digest.txt"
    digest = code_digest(book_dir.parent)
    stale = stamp.exists() and stamp.read_text().strip() != digest
    if stale:
        for name in (".jupyter_cache", "jupyter_execute", "bookkit", "practice"):
            shutil.rmtree(build / name, ignore_errors=True)
    build.mkdir(parents=True, exist_ok=True)
    stamp.write_text(digest + "\n")
    return stale


def clean(book_dir: str | Path = BOOK_DIR) -> None:
    """Remove book/_build: the HTML, the executed outputs and the models trained for the book."""
    shutil.rmtree(Path(book_dir) / "_build", ignore_errors=True)


def build_book(book_dir: str | Path = BOOK_DIR, builder: str = "html", warnings_as_errors: bool = True,
               *, all_files: bool = False, quiet: bool = False, log_path: str | Path | None = None) -> Path:
    """Build the book with Jupyter Book; return the output folder (book/_build/<builder>).

    builder: "html" (the default), or another Jupyter Book builder ("dirhtml", "linkcheck", ...).
    warnings_as_errors: Sphinx warnings fail the build (as in CI).
    all_files: re-render every page (the executed outputs still come from the cache).
    The cached outputs of the workshop's book are dropped first when the code the
    chapters run (solutions/, the CLI, book/bookkit.py) changed since the last build.
    The full log goes to `log_path` (default book/_build/build.log); a failure
    raises BookBuildError with its tail.
    """
    book_dir = Path(book_dir).resolve()
    if builder not in OUTPUT_FOLDERS:
        raise BookBuildError(f"builder は {', '.join(OUTPUT_FOLDERS)} のどれかです ({builder!r})")
    if not (book_dir / "_config.yml").exists():
        raise BookBuildError(f"{book_dir}: _config.yml がありません (Jupyter Book のフォルダではありません)")
    if book_dir == BOOK_DIR.resolve() and forget_stale_outputs(book_dir) and not quiet:
        print("solutions/ などのコードが変わったので、全部の章を実行し直します", file=sys.stderr)
    log_path = Path(log_path) if log_path else book_dir / "_build" / "build.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [*jupyter_book_command(), "build", str(book_dir), "--builder", builder]
    if warnings_as_errors:
        cmd.append("-W")  # without --keep-going: stop at the first warning
    if all_files:
        cmd.append("--all")
    started = time.time()
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen(cmd, cwd=book_dir, env=build_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, encoding="utf-8", errors="replace")
        for line in proc.stdout:
            log.write(line)
            if not quiet:
                sys.stderr.write(line)
        rc = proc.wait()
    seconds = time.time() - started
    if rc != 0:
        tail = "".join(log_path.read_text(encoding="utf-8").splitlines(keepends=True)[-40:])
        raise BookBuildError(f"本のビルドに失敗しました (終了コード {rc}, {seconds:.0f} 秒)。"
                             f"ログ: {log_path}\n{tail}")
    out = book_dir / "_build" / OUTPUT_FOLDERS.get(builder, builder)
    if not quiet:
        print(f"本をビルドしました ({seconds:.0f} 秒): {out / 'index.html' if builder == 'html' else out}",
              file=sys.stderr)
    return out


def run_book(args) -> int:
    if args.clean:
        clean(args.book_dir)
    try:
        build_book(args.book_dir, builder=args.builder, warnings_as_errors=not args.allow_warnings,
                   all_files=args.all, quiet=args.quiet)
    except BookBuildError as e:
        print(f"エラー: {e}", file=sys.stderr)
        return 1
    return 0


def register(subparsers) -> None:
    """Add `bert-workshop book` to the CLI's subparsers."""
    p = subparsers.add_parser(
        "book", help="解説書 (book/) をビルドする: コードを実行して HTML に (オフライン)",
        description="Jupyter Book で book/ を HTML にします。各章のコードはビルド時に実行され、"
                    "結果は book/_build/.jupyter_cache にキャッシュされます。Sphinx の警告はエラーです。")
    p.add_argument("--clean", action="store_true",
                   help="book/_build を消してから最初からビルドする (実行結果のキャッシュも消える)")
    p.add_argument("--all", action="store_true", help="全ページを書き直す (実行結果はキャッシュを使う)")
    p.add_argument("--builder", default="html", choices=list(OUTPUT_FOLDERS),
                   help="Jupyter Book のビルダー (既定 html)")
    p.add_argument("--allow-warnings", action="store_true", help="警告があってもビルドを続ける")
    p.add_argument("--quiet", action="store_true", help="ビルドのログを表示しない (book/_build/build.log に残る)")
    p.add_argument("--book-dir", default=str(BOOK_DIR), help="本のフォルダ (既定 book/)")
    p.set_defaults(func=run_book)


def main(argv=None) -> int:
    """`python -m autograder.book` works before the subcommand is wired into the CLI."""
    import argparse

    parser = argparse.ArgumentParser(prog="bert-workshop")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["book", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
