"""argparse's own messages in Japanese, and a mistyped option reported with the usage
of the subcommand it was given to (``bert-workshop autograde … --wrokers 2``).

argparse builds its messages with ``gettext``; they are looked up here instead.
A message not listed (another Python version's wording) stays in English.
"""
from __future__ import annotations

import argparse
import errno

JAPANESE = {
    "usage: ": "使い方: ",
    "positional arguments": "引数",
    "options": "オプション",
    "show this help message and exit": "このヘルプを表示して終わる",
    "%(prog)s: error: %(message)s\n": "%(prog)s: エラー: %(message)s\n",
    "argument %(argument_name)s: %(message)s": "%(argument_name)s: %(message)s",
    "the following arguments are required: %s": "次の引数が必要です: %s",
    "unrecognized arguments: %s": "知らない引数です: %s (--help で使えるものを確かめてください)",
    "invalid choice: %(value)r (choose from %(choices)s)": "%(value)r は選べません (%(choices)s から選んでください)",
    "invalid %(type)s value: %(value)r": "%(value)r は %(type)s として読めません",
    "expected one argument": "値が 1 つ必要です",
    "expected at least one argument": "値が 1 つ以上必要です",
    "expected at most one argument": "値は 1 つまでです",
    "expected %s argument": "値が %s 個必要です",
    "expected %s arguments": "値が %s 個必要です",
    "ambiguous option: %(option)s could match %(matches)s": "%(option)s があいまいです (候補: %(matches)s)",
    "not allowed with argument %s": "%s と一緒には使えません",
    "one of the arguments %s is required": "%s のどれかが必要です",
    "ignored explicit argument %r": "%r は指定できません",
    "can't open '%(filename)s': %(error)s": "'%(filename)s' を開けません: %(error)s",
}


def japanese(message: str) -> str:
    return JAPANESE.get(message, message)


def invalid_choice(option: str, value: str, choices) -> str:
    """argparse's message for a value not among `choices`, for a check made after parsing."""
    message = japanese("invalid choice: %(value)r (choose from %(choices)s)") % {
        "value": value, "choices": ", ".join(map(repr, choices))}
    return japanese("argument %(argument_name)s: %(message)s") % {"argument_name": option, "message": message}


# The grader runs without solutions (a class is graded from the course bundle), so it
# keeps this copy of solutions.data.records.OS_ERROR_REASONS (a test keeps them equal).
OS_ERRORS = {errno.ENOENT: "見つかりません", errno.EISDIR: "フォルダです (ファイルを指定してください)",
             errno.ENOTDIR: "途中にフォルダでないものがあります", errno.EEXIST: "同じ名前のファイルがあります",
             errno.EACCES: "アクセスする権限がありません", errno.ENOSPC: "ディスクがいっぱいです",
             errno.ENAMETOOLONG: "名前が長すぎます"}


def os_problem(e: OSError) -> str:
    """What an OSError says, in Japanese for the common ones (solutions.data.describe_os_error's twin)."""
    return OS_ERRORS.get(e.errno, e.strerror or str(e))


def use_japanese_messages() -> None:
    argparse._ = japanese
    argparse.ngettext = lambda singular, plural, n: japanese(singular if n == 1 else plural)


def remember_subcommands(parser: argparse.ArgumentParser) -> None:
    """Each subcommand's parser stores itself in the parsed arguments (as `_parser`),
    so that an error after parsing can show that subcommand's usage."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for subparser in action.choices.values():
                subparser.set_defaults(_parser=subparser)
                remember_subcommands(subparser)


def parse(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """parse_args, with leftovers blamed on the subcommand (the parser made after
    use_japanese_messages, so that its headings are in Japanese too)."""
    use_japanese_messages()
    remember_subcommands(parser)
    args, leftovers = parser.parse_known_args(argv)
    if leftovers:
        getattr(args, "_parser", parser).error(japanese("unrecognized arguments: %s") % " ".join(leftovers))
    problem = args.check_usage(args) if hasattr(args, "check_usage") else None  # options that contradict
    if problem:
        getattr(args, "_parser", parser).error(problem)
    return args


# ------------------------------------------------- numbers checked as they are read


def positive_int(text: str) -> int:
    """An integer >= 1 (steps, epochs, sizes)."""
    value = read_as(int, "整数", text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"1 以上の整数にしてください ({text})")
    return value


def non_negative_int(text: str) -> int:
    """An integer >= 0 (0: no limit)."""
    value = read_as(int, "整数", text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"0 以上の整数にしてください ({text})")
    return value


def read_as(kind, name: str, text: str):
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{name}ではありません ({text})") from None


def positive_float(text: str) -> float:
    """A number > 0 (learning rates, minutes)."""
    value = read_as(float, "数", text)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"0 より大きい数にしてください ({text})")
    return value


def fraction(text: str) -> float:
    """A share strictly between 0 and 1 (dev fraction, masking share)."""
    value = read_as(float, "数", text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"0 と 1 のあいだの数にしてください ({text})")
    return value


def system_name(text: str) -> str:
    """A system name for SHINRA's AUTO.<system>.<yyyyMM>, checked as the submission writer checks it."""
    from solutions.data.shinra import submission_key

    try:
        submission_key(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def device_name(text: str) -> str:
    if text not in ("auto", "cpu", "cuda") and not text.startswith("cuda:"):
        raise argparse.ArgumentTypeError(f"auto / cpu / cuda のどれかにしてください ({text})")
    return text
