"""``bert-workshop leaderboard score|submit|show|render|close``.

The top-level CLI calls ``register(subparsers)``; each sub-subcommand sets
``func``, so ``args.func(args)`` (or ``run(args)``) runs it and returns the exit
status. ``python -m autograder.leaderboard.cli ...`` runs it on its own.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from autograder.cli_messages import fraction, non_negative_int, positive_float, positive_int
from autograder.leaderboard import render
from autograder.leaderboard.board import (
    DB_ENV, DEFAULT_DB, PUBLIC, SELECTIONS, Board, BoardError)
from autograder.leaderboard.scorer import InvalidInput, per_label_csv, score_files
from autograder.paths import UsageError, refuse_overwriting

EXIT_OK, EXIT_REJECTED, EXIT_USAGE = 0, 1, 2

_SCORE_EPILOG = """\
採点のきまり:
  (ページ, ラベル) の組ごとに数えた TP・FP・FN を全ページで合計した micro-F1 を
  100 倍して出します (F1 = 2·TP / ((TP+FP) + (TP+FN)))。
  正解にあって提出にないページは、公式の SHINRA 採点と同じく IGNORED (ENE "9") と
  予測したものとして数えます (ENE 以外のラベルでは「ラベルなし」と予測したものとします)。
  prob は [0, 1] の範囲か確かめるだけで、採点には使いません。

読めるファイルの形:
  SHINRA 形式  {"page_id": "…", "ENEs": {"HAND.…" または "AUTO.<system>.<yyyyMM>": [{"prob": 1, "ENE": "1.7.13.6"}]}}
  簡易形式     {"page_id": "…", "labels": ["…"], "probs": [0.9]}
  正解が SHINRA 形式か、ラベルが ENE v9 の ID だけの簡易形式なら、ENE v9 にない ID を誤りとします。
  それ以外の簡易形式の正解なら、任意のラベルを受け付けます (--labels-any / --labels-ene で指定も可)。
  どちらのファイルも gzip 圧縮のままで読めます。

終了コード: 0 採点できた / 1 ファイルに誤りがあり採点しなかった / 2 使い方の誤り
"""

_BOARD_EPILOG = f"""\
リーダーボードは SQLite のファイル 1 つです (--db; 既定は環境変数 {DB_ENV}、
なければ今のディレクトリの {DEFAULT_DB})。最初の submit に --gold を渡すと作られ、
そのときの設定 (public の割合、分割の種、提出回数の上限) がずっと使われます。
"""


def _db_path(args) -> Path:
    return Path(args.db or os.environ.get(DB_ENV) or DEFAULT_DB)


def _add_db(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", metavar="PATH",
                        help=f"リーダーボードのファイル (既定: ${DB_ENV} か ./{DEFAULT_DB})")


def add_label_space_options(parser: argparse.ArgumentParser) -> None:
    """--labels-any / --labels-ene (default: decided by the gold file)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--labels-any", dest="label_space", action="store_const", const="any",
                       help="ラベルを ENE v9 の ID か確かめない (livedoor などのデータセット向け)。"
                            "提出にないページは「ラベルなし」と予測したものとして数える")
    group.add_argument("--labels-ene", dest="label_space", action="store_const", const="ene",
                       help="ラベルを ENE v9 の ID として確かめる。既定では、正解が森羅形式のときと、"
                            "簡易形式で全ラベルが ENE v9 の ID のときにそうします")
    parser.set_defaults(label_space="auto")


def _add_max_errors(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-errors", type=positive_int, default=20, metavar="N",
                        help="表示する誤りの数 (残りは件数だけ表示; 既定: 20)")


# --- score ------------------------------------------------------------------

def _add_score(sub) -> None:
    p = sub.add_parser(
        "score", help="提出ファイルを正解と照らして micro-F1 を出す",
        description="提出ファイルを確かめ、正解ファイルと照らして micro-F1 を出します。",
        epilog=_SCORE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("gold", metavar="GOLD", help="正解ファイル (JSONL)")
    p.add_argument("submission", metavar="SUBMISSION", help="提出ファイル (JSONL)")
    add_label_space_options(p)
    _add_max_errors(p)
    p.add_argument("--per-label", metavar="CSV",
                   help="ラベルごとの表を CSV に書く (- なら標準出力)")
    p.add_argument("--json", action="store_true", help="結果を JSON で出す")
    p.set_defaults(func=cmd_score)


def cmd_score(args) -> int:
    per_label_file = args.per_label if args.per_label != "-" else None
    try:
        refuse_overwriting([("--per-label", per_label_file)], [("GOLD", args.gold), ("SUBMISSION", args.submission)])
    except UsageError as e:
        print(f"エラー: {e}", file=sys.stderr)
        return EXIT_USAGE
    try:
        report = score_files(args.gold, args.submission, max_errors=args.max_errors,
                             per_label=bool(args.per_label), label_space=args.label_space)
    except InvalidInput as e:
        print(e, file=sys.stderr)
        return EXIT_REJECTED
    if args.per_label:
        _write_text(args.per_label, per_label_csv(report))
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
    elif args.per_label != "-":
        print(render.format_score_report(report), end="")
    return EXIT_OK


def _write_text(target: str, text: str) -> None:
    if target == "-":
        sys.stdout.write(text)
    else:
        Path(target).write_text(text, encoding="utf-8")
        print(f"ラベルごとの表を書きました: {target}", file=sys.stderr)


# --- submit -----------------------------------------------------------------

def _add_submit(sub) -> None:
    p = sub.add_parser(
        "submit", help="提出ファイルを採点してリーダーボードに載せる",
        description="提出ファイルを採点してリーダーボードに記録します。誤りのある提出は"
                    "記録せず、回数にも数えません。",
        epilog=_BOARD_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("submission", metavar="SUBMISSION", help="提出ファイル (JSONL)")
    p.add_argument("--team", required=True, help="チーム名")
    p.add_argument("-m", "--description", default="", help="提出の説明 (表に載ります)")
    _add_db(p)
    _add_max_errors(p)
    created = p.add_argument_group("リーダーボードを作るときだけ使う設定")
    created.add_argument("--gold", metavar="GOLD", help="正解ファイル (作成時に必須; 後で渡すと作成時と同じファイルか確かめる)")
    created.add_argument("--public-fraction", type=fraction, default=None, metavar="F",
                         help="public に回すページの割合 (既定: 0.5)")
    created.add_argument("--split-seed", default=None, metavar="TEXT",
                         help="public/private 分割の種 (既定: ランダムに決めて保存)")
    created.add_argument("--max-submissions", type=non_negative_int, default=None, metavar="N",
                         help="1 チームが時間枠の中で提出できる回数 (既定: 3; 0 なら無制限)")
    created.add_argument("--window-hours", type=positive_float, default=None, metavar="H",
                         help="提出回数を数える時間枠 (既定: 24 時間)")
    add_label_space_options(created)
    p.set_defaults(func=cmd_submit)


_CREATE_OPTIONS = ("public_fraction", "split_seed", "max_submissions", "window_hours")


def _open_board_for_submit(args) -> Board:
    path = _db_path(args)
    if not args.gold:
        board = Board.open(path)  # says that it is missing (and needs --gold), or a folder
    else:
        options = {k: getattr(args, k) for k in _CREATE_OPTIONS if getattr(args, k) is not None}
        board = Board.create(path, args.gold, label_space=args.label_space, exist_ok=True,
                             **options)
    try:
        _check_settings_match(board, args)
    except BoardError:
        board.close_connection()
        raise
    return board


def _check_settings_match(board: Board, args) -> None:
    config = board.config
    for key in _CREATE_OPTIONS:
        given = getattr(args, key)
        if given is not None and given != getattr(config, key):
            raise BoardError(f"--{key.replace('_', '-')} は作成時の設定 "
                             f"({getattr(config, key)}) と違います。設定は作成時に決まります")
    if args.gold and Path(args.gold).resolve() != Path(config.gold_path):
        raise BoardError(f"--gold は作成時の正解ファイル ({config.gold_path}) と違います")


def cmd_submit(args) -> int:
    try:
        with _open_board_for_submit(args) as board:
            record = board.submit(args.team, args.submission, args.description,
                                  max_errors=args.max_errors)
            used = _used_in_window(board, record.team)
    except (InvalidInput, BoardError) as e:
        print(e, file=sys.stderr)
        return EXIT_REJECTED
    print(f"受け付けました: チーム「{record.team}」 提出 #{record.id}")
    print(f"{render.PUBLIC_F1}: {render.format_score(record.public_f1)}")
    print(used)
    for note in _submit_notes(record):
        print(note, file=sys.stderr)
    return EXIT_OK


def _submit_notes(record) -> list[str]:
    """The warnings ``leaderboard score`` gives, for an accepted submission: pages left
    out (over all pages: how many and which says nothing of the split), and no label
    in common with the gold, judged on the public pages only (the private score stays
    hidden)."""
    report = record.report
    if report is None:
        return []
    public = report.parts.get(PUBLIC)
    notes = [render.missing_pages_note(report),
             render.no_common_label_note(public, "Public のページでは") if public is not None else None]
    return [note for note in notes if note]


def _used_in_window(board: Board, team: str) -> str:
    config = board.config
    if config.max_submissions == 0:
        return "提出回数の上限はありません"
    latest = board.submissions(team)
    newest = latest[-1].submitted_at
    recent = [s for s in latest if s.submitted_at > newest - config.window_hours * 3600]
    return (f"直近 {config.window_hours:g} 時間の提出: {len(recent)} / "
            f"{config.max_submissions} 回")


# --- show / render / close ----------------------------------------------------

def _add_show(sub) -> None:
    p = sub.add_parser("show", help="順位表を端末に出す",
                       description="順位表を端末に出します (締め切り前は public、後は private)。")
    _add_db(p)
    p.add_argument("--team", help="このチームの提出をすべて出す")
    p.add_argument("--public", action="store_true", help="締め切り後も public の順位表を出す")
    p.set_defaults(func=cmd_show)


def cmd_show(args) -> int:
    try:
        with Board.open(_db_path(args)) as board:
            if args.team:
                print(_team_history(board, args.team), end="")
            else:
                print(render.render_terminal(board.standings(PUBLIC if args.public else None)),
                      end="")
    except BoardError as e:
        print(e, file=sys.stderr)
        return EXIT_REJECTED
    return EXIT_OK


def _team_history(board: Board, team: str) -> str:
    subs = board.submissions(team)
    if not subs:
        return f"チーム「{team}」の提出はありません\n"
    closed = board.closed is not None
    cols = ["#", render.SUBMITTED, render.DESCRIPTION, render.PUBLIC_F1]
    cols += [render.PRIVATE_F1] if closed else []
    rows = [[str(s.id), render.format_time(s.submitted_at), s.description,
             render.format_score(s.public_f1)] + ([render.format_score(s.private_f1)] if closed
                                                  else [])
            for s in subs]
    numeric = [render.numeric_column(c) for c in cols]
    return f"チーム「{subs[0].team}」の提出\n" + render.format_table(cols, rows, numeric) + "\n"


def _add_render(sub) -> None:
    p = sub.add_parser("render", help="順位表を Markdown と HTML に書き出す",
                       description="順位表を Markdown (leaderboard.md) と、外部ファイルを使わない "
                                   "HTML (leaderboard.html) に書き出します。")
    _add_db(p)
    p.add_argument("--out-dir", default=".", metavar="DIR", help="書き出すディレクトリ (既定: .)")
    p.add_argument("--title", default=render.TITLE, help="表の題")
    p.set_defaults(func=cmd_render)


def cmd_render(args) -> int:
    try:
        with Board.open(_db_path(args)) as board:
            standings = board.standings()
    except BoardError as e:
        print(e, file=sys.stderr)
        return EXIT_REJECTED
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, text in (("leaderboard.md", render.render_markdown(standings, title=args.title)),
                       ("leaderboard.html", render.render_html(standings, title=args.title))):
        (out / name).write_text(text, encoding="utf-8")
        print(f"書きました: {out / name}")
    return EXIT_OK


def _add_close(sub) -> None:
    p = sub.add_parser(
        "close", help="提出を締め切り、private の順位を出す",
        description="提出を締め切ります。以後の提出は受け付けず、順位は private スコアで決まります。")
    _add_db(p)
    p.add_argument("--select", choices=SELECTIONS, default="public-best",
                   help="各チームのどの提出を順位に使うか: public-best は public スコアが最高の提出 "
                        "(Kaggle と同じ; 既定)、private-best は private スコアが最高の提出")
    p.set_defaults(func=cmd_close)


def cmd_close(args) -> int:
    try:
        with Board.open(_db_path(args)) as board:
            standings = board.close(args.select)
    except BoardError as e:
        print(e, file=sys.stderr)
        return EXIT_REJECTED
    print("締め切りました。")
    print(render.render_terminal(standings), end="")
    return EXIT_OK


# --- wiring -----------------------------------------------------------------

def register(subparsers) -> argparse.ArgumentParser:
    """Add ``leaderboard`` with its sub-subcommands to an argparse subparsers object."""
    parser = subparsers.add_parser(
        "leaderboard", help="リーダーボード: 採点・提出・順位表",
        description="SHINRA 形式の提出を採点し、チームの順位表を管理します。")
    parser.set_defaults(func=lambda args: _print_help(parser))
    sub = parser.add_subparsers(title="サブコマンド", metavar="{score,submit,show,render,close}")
    for add in (_add_score, _add_submit, _add_show, _add_render, _add_close):
        add(sub)
    return parser


def _print_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def run(args) -> int:
    return args.func(args)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="bert-workshop")
    register(parser.add_subparsers(title="サブコマンド", metavar="leaderboard"))
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] != ["leaderboard"]:
        argv = ["leaderboard"] + argv
    args = parser.parse_args(argv)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
