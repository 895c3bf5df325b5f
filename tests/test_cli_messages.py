"""The command line's own usage errors: in Japanese, with the usage of the subcommand at fault."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from autograder import cli

ROOT = Path(__file__).resolve().parent.parent


def usage_error(capsys, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    return capsys.readouterr().err


def test_a_mistyped_option_is_blamed_on_its_subcommand(capsys):
    err = usage_error(capsys, ["autograde", "class", "--wrokers", "2"])
    assert "使い方: bert-workshop autograde" in err
    assert "bert-workshop autograde: エラー: 知らない引数です: --wrokers 2" in err
    err = usage_error(capsys, ["leaderboard", "show", "--bord", "x"])
    assert "bert-workshop leaderboard show: エラー: 知らない引数です: --bord x" in err


@pytest.mark.parametrize("argv, message", [
    (["autograd"], "'autograd' は選べません ("),
    (["autograde", "class", "--workers", "two"], "--workers: 'two' は int として読めません"),
    (["train"], "次の引数が必要です: --train, --dev, --checkpoint"),
    (["predict", "--checkpoint"], "--checkpoint: 値が 1 つ必要です"),
])
def test_usage_errors_are_in_japanese(capsys, argv, message):
    assert message in usage_error(capsys, argv)


def test_help_is_in_japanese():
    # A fresh process: argparse's headings are made with the parsers, before any message is looked up.
    out = subprocess.run([sys.executable, "-m", "autograder.cli", "score", "--help"], capture_output=True,
                         text=True, check=True, cwd=ROOT).stdout
    assert out.startswith("使い方: bert-workshop score") and "オプション:" in out and "このヘルプを表示" in out


def test_warnings_of_ours_are_plain_messages_and_others_keep_their_source():
    import io

    import solutions.data.shinra as shinra

    out = io.StringIO()
    cli.show_warning(UserWarning("dump.json.gz: 2 ページの本文がダンプにありません"), UserWarning,
                     shinra.__file__, 166, file=out)
    assert out.getvalue() == "警告: dump.json.gz: 2 ページの本文がダンプにありません\n"
    out = io.StringIO()
    cli.show_warning(UserWarning("TypedStorage is deprecated"), UserWarning, "/x/torch/storage.py", 12, file=out)
    assert out.getvalue().startswith("/x/torch/storage.py:12: UserWarning: TypedStorage is deprecated")


def test_a_warning_of_ours_while_a_command_runs_is_a_plain_message(tmp_path, monkeypatch, capsys):
    from solutions import data as D
    from solutions.predict import chunks

    D.write_shinra_inputs(tmp_path / "inputs.jsonl", [("1", "東京"), ("2", "大阪")])
    D.write_cirrus_dump(tmp_path / "dump.json", [("1", "東京", "日本の首都。")])

    def reads_inputs(args):  # read as predict reads them (solutions.predict consumes the stream)
        pages = [p for chunk in chunks(D.read_shinra_inputs(tmp_path / "inputs.jsonl", tmp_path / "dump.json"), 10)
                 for p in chunk]
        assert [p.page_id for p in pages] == ["1", "2"]
        return 0

    monkeypatch.setattr(cli.pipeline, "run_score", reads_inputs)
    assert cli.main(["score", "gold.jsonl", "sub.jsonl"]) == 0
    err = capsys.readouterr().err
    assert err.startswith(f"警告: {tmp_path / 'dump.json'}: 1 ページの本文がダンプにありません"), err
