"""The `bert-workshop` command (placeholder; subcommands are wired here)."""


def main(argv=None):
    raise SystemExit("未実装")
