"""The `bert-workshop` command. It only imports the CLI (torch and transformers:
seconds) inside a Ctrl-C handler, so stopping it early shows no traceback."""
from __future__ import annotations

import sys


def main(argv=None) -> int:
    try:
        from .cli import main as run_cli
    except KeyboardInterrupt:
        print("\n中断しました。", file=sys.stderr)
        return 130
    return run_cli(argv)


if __name__ == "__main__":
    sys.exit(main())
