"""`bert-workshop book` (autograder/book.py): the subcommand and the strict build.

The real book is built and checked in a browser by tests/test_book.py; here a
one-page book shows that a Sphinx warning (a broken reference) fails the build.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from autograder import book


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bert-workshop")
    book.register(p.add_subparsers(dest="command", required=True))
    return p


def test_register_adds_the_book_subcommand():
    args = parser().parse_args(["book", "--clean"])
    assert args.command == "book" and args.clean and args.func is book.run_book
    assert args.builder == "html" and not args.allow_warnings
    assert Path(args.book_dir) == book.BOOK_DIR


def test_unknown_builder_is_a_usage_error():
    with pytest.raises(SystemExit):
        parser().parse_args(["book", "--builder", "epub3"])


def test_a_folder_without_config_is_refused(tmp_path):
    with pytest.raises(book.BookBuildError, match="_config.yml"):
        book.build_book(tmp_path)


def test_the_build_uses_this_environment():
    env = book.build_env()
    assert env["PATH"].split(":")[0] == str(Path(book.sys.executable).parent)
    assert Path(book.jupyter_book_command()[0]).parent == Path(book.sys.executable).parent or \
        book.jupyter_book_command()[0] == book.sys.executable


def write_tiny_book(folder: Path, page: str) -> None:
    (folder / "_config.yml").write_text(
        "title: t\nauthor: t\nonly_build_toc_files: true\nexecute:\n  execute_notebooks: 'off'\n",
        encoding="utf-8")
    (folder / "_toc.yml").write_text("format: jb-book\nroot: index\n", encoding="utf-8")
    (folder / "index.md").write_text(page, encoding="utf-8")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_warning_fails_the_build_and_a_clean_book_builds(tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    write_tiny_book(broken, "# 表紙\n\n{ref}`no-such-label` への参照。\n")
    with pytest.raises(book.BookBuildError, match="no-such-label"):
        book.build_book(broken, quiet=True)

    fine = tmp_path / "fine"
    fine.mkdir()
    write_tiny_book(fine, "(top)=\n# 表紙\n\n{ref}`top` への参照。\n")
    out = book.build_book(fine, quiet=True)
    assert (out / "index.html").is_file()


def test_cached_outputs_are_dropped_when_the_code_changes(tmp_path):
    (tmp_path / "solutions").mkdir()
    code = tmp_path / "solutions" / "attention.py"
    code.write_text("x = 1\n")
    cache = tmp_path / "book" / "_build" / ".jupyter_cache"
    cache.mkdir(parents=True)
    assert not book.forget_stale_outputs(tmp_path / "book")   # first build: nothing to compare with
    assert cache.exists()
    assert not book.forget_stale_outputs(tmp_path / "book")   # same code: the cache stays
    code.write_text("x = 2\n")
    assert book.forget_stale_outputs(tmp_path / "book")       # changed code: every chapter runs again
    assert not cache.exists()
