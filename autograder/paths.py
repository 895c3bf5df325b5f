"""Checks on the files a command is given, made before any work: an output that
is one of the inputs would replace it, and the input would be lost."""
from __future__ import annotations

import os
from pathlib import Path


class UsageError(ValueError):
    """Arguments that cannot work together, or a value a command does not take:
    exit status 2, as for argparse's own errors."""


def same_file(a, b) -> bool:
    """Whether two paths name one file (through links, ``..`` and the like)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): compare the names
        return Path(a).resolve() == Path(b).resolve()


def refuse_overwriting(outputs: list[tuple[str, object]], inputs: list[tuple[str, object]]) -> None:
    """Refuse (``UsageError``) an output that is an input, or that another output
    also writes. Each is ``(what the user typed it as, path)``; a None path is skipped."""
    outputs = [(name, path) for name, path in outputs if path is not None]
    inputs = [(name, path) for name, path in inputs if path is not None]
    for i, (name, path) in enumerate(outputs):
        for other_name, other in inputs:
            if same_file(path, other):
                raise UsageError(f"{name} ({path}) が {other_name} ({other}) と同じファイルです。"
                                 "書くと読むファイルの中身が消えるので、別のファイル名にしてください")
        if any(same_file(path, other) for _, other in outputs[:i]):
            raise UsageError(f"{name} ({path}) を 2 回書くことになり、先に書いた中身が消えます。"
                             "出力先が重ならないように、ファイル名を変えてください")
