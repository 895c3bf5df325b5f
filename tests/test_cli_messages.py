"""The command line's own usage errors: in Japanese, with the usage of the subcommand at fault."""
from __future__ import annotations

import subprocess
import sys
import zipfile
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
    (["autograde", "class", "--workers", "two"], "--workers: 整数ではありません (two)"),
    (["leaderboard", "submit", "s", "--team", "A", "--max-submissions", "many"], "--max-submissions: 整数ではありません (many)"),
    (["train"], "次の引数が必要です: --train, --dev, --checkpoint"),
    (["predict", "--checkpoint"], "--checkpoint: 値が 1 つ必要です"),
    (["autograde", "class", "--workers", "0"], "--workers: 1 以上の整数にしてください (0)"),  # 2, as usage errors
    (["pretrain", "--data", "d.jsonl", "--size", "huge"], "--size: 'huge' は選べません ('tiny', 'mini'"),
    (["pretrain", "--data", "d.jsonl", "--short-length", "256", "--max-length", "128"],
     "--short-length (256) は --max-length (128) より短く"),
    (["predict", "--checkpoint", "c", "--input", "i", "--output", "o", "--system", "my bert"],
     "--system: システム名には英数字"),
    (["leaderboard", "submit", "s", "--team", "A", "--public-fraction", "1.5"], "--public-fraction: 0 と 1 のあいだ"),
    (["leaderboard", "submit", "s", "--team", "A", "--window-hours", "-1"], "--window-hours: 0 より大きい数"),
    (["leaderboard", "submit", "s", "--team", "A", "--max-submissions", "-1"], "--max-submissions: 0 以上の整数"),
    (["leaderboard", "score", "g", "s", "--max-errors", "0"], "--max-errors: 1 以上の整数にしてください (0)"),
    (["demo", "--pages", "40"], "--pages: 100 以上にしてください (40)"),
    (["train", "--train", "t", "--dev", "d", "--checkpoint", "c", "--windows", "2", "--max-length", "3"],
     "--max-length が 4 以上必要です (3)"),
    (["predict", "--checkpoint", "c", "--input", "i", "--output", "o", "--windows", "2", "--max-length", "3"],
     "--max-length が 4 以上必要です (3)"),
    (["autograde", "class", "--memory-limit", "abc"], "--memory-limit: メモリの大きさ 'abc' が読めません (例: 4G"),
    (["release", "--check", "--bundle", "course.zip"], "--check は確かめるだけで何も書きません"),
    (["release", "--out", "never-written", "--bundle", "."], "--bundle .: フォルダです"),  # before any notebook
])
def test_usage_errors_are_in_japanese(capsys, argv, message):
    assert message in usage_error(capsys, argv)


def test_an_unknown_assignment_is_a_usage_error(capsys, tmp_path):
    """Known only once the course is known (after parsing), and still a usage error."""
    for option in ("--assignment", "--default-assignment"):
        err = usage_error(capsys, ["autograde", str(tmp_path / "class"), "--out", str(tmp_path / "out"), "--assignment",
                                   "01_basics", option, "99_nope"])
        assert "使い方: bert-workshop autograde" in err
        assert f"bert-workshop autograde: エラー: {option}: '99_nope' は選べません ('01_basics'" in err


def test_a_course_that_is_not_a_zip_is_named(tmp_path, capsys):
    course = tmp_path / "course.zip"
    course.write_text("not a zip")
    argv = ["autograde", str(tmp_path / "class"), "--out", str(tmp_path / "out"), "--course", str(course)]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"エラー: {course}: zip として読めません") and "File is not" not in err, err


def test_a_course_with_a_member_that_cannot_be_written_is_named(tmp_path, capsys):
    """A bundle whose member cannot be extracted (a file "course" and a member under
    "course/"): the member and why, not an error from the grader's work folder."""
    course = tmp_path / "course.zip"
    with zipfile.ZipFile(course, "w") as zf:
        zf.writestr("course", "a file")
        zf.writestr("course/gradebook.db", "")
    argv = ["autograde", str(tmp_path / "class"), "--out", str(tmp_path / "out"), "--course", str(course)]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"エラー: {course}: 展開できないファイルがあります: course/gradebook.db "
                          "(展開できませんでした: 同じ名前のファイルがあります)"), err
    assert "bw-grade" not in err


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


def test_ctrl_c_while_the_command_starts_is_a_message_not_a_traceback(tmp_path):
    """Ctrl-C in the first seconds, while torch is imported: the installed command
    (autograder.entry) says it stopped and exits 130. A stand-in torch module
    raises KeyboardInterrupt where the real import would be interrupted."""
    (tmp_path / "torch.py").write_text("raise KeyboardInterrupt\n")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{tmp_path}:{ROOT}"}
    done = subprocess.run([sys.executable, "-c", "import sys; from autograder.entry import main; sys.exit(main())",
                           "score", "a", "b"], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 130, done.stderr
    assert "中断しました" in done.stderr and "Traceback" not in done.stderr
    entry = [line for line in (ROOT / "pyproject.toml").read_text().splitlines() if line.startswith("bert-workshop =")]
    assert entry == ['bert-workshop = "autograder.entry:main"']  # the command goes through it


def test_both_score_commands_refuse_a_broken_file_with_exit_status_1(tmp_path, capsys):
    """`score` and `leaderboard score` share the scorer and its exit statuses:
    1 for a file with errors (nothing scored), 2 for a usage error."""
    from autograder.leaderboard import cli as board_cli

    gold, broken = tmp_path / "gold.jsonl", tmp_path / "sub.jsonl"
    gold.write_text('{"page_id": "1", "labels": ["a"]}\n{"page_id": "2", "labels": ["b"]}\n')
    broken.write_text('{"page_id": "1", "labels": ["a"]}\n{"page_id": "2", "labels": "b"\n')
    assert cli.main(["score", str(gold), str(broken)]) == 1
    assert f"{broken}:2" in capsys.readouterr().err
    assert board_cli.main(["score", str(gold), str(broken)]) == 1
    assert f"{broken}:2" in capsys.readouterr().err
    for run in (cli.main, board_cli.main):
        with pytest.raises(SystemExit) as info:
            run(["score", str(gold)])
        assert info.value.code == 2


def test_an_output_that_is_an_input_is_refused_before_any_work(tmp_path, capsys):
    """Writing an output over a file the command reads would lose that file: usage error, file kept."""
    from autograder.leaderboard import cli as board_cli

    pages, gold = tmp_path / "pages.jsonl", tmp_path / "gold.jsonl"
    for path in (pages, gold, tmp_path / "out" / "train.jsonl"):
        path.parent.mkdir(exist_ok=True)
        path.write_text('{"page_id": "1", "title": "t", "text": "本文", "labels": ["a"]}\n')
    (tmp_path / "link.jsonl").symlink_to(pages)
    predict = ["predict", "--checkpoint", tmp_path / "no-model"]
    cases = [
        (cli.main, [*predict, "--input", pages, "--output", tmp_path / "out" / ".." / "pages.jsonl"], "--input"),
        (cli.main, [*predict, "--input", pages, "--output", tmp_path / "link.jsonl"], "--input"),
        (cli.main, [*predict, "--input", gold, "--dump", pages, "--output", pages], "--dump"),
        (cli.main, ["data", "shinra", "--train-file", tmp_path / "out" / "train.jsonl", "--dump", pages,
                    "--out", tmp_path / "out"], "--train-file"),
        (cli.main, ["data", "livedoor", "--archive", tmp_path / "out" / "train.jsonl", "--out", tmp_path / "out"],
         "--archive"),
        (cli.main, ["leaderboard", "score", gold, pages, "--per-label", pages], "SUBMISSION"),
        (board_cli.main, ["score", gold, pages, "--per-label", gold], "GOLD"),
    ]
    for run, argv, named in cases:
        before = {path: path.read_bytes() for path in (pages, gold, tmp_path / "out" / "train.jsonl")}
        assert run([str(a) for a in argv]) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("エラー: ") and f"が {named} (" in err and "同じファイルです" in err, err
        assert {path: path.read_bytes() for path in before} == before


def test_two_inputs_that_would_be_written_to_one_file_are_refused(tmp_path, capsys):
    argv = ["data", "shinra", "--train-file", "t.jsonl", "--dump", "d.json", "--inputs", "a/x.jsonl",
            "--inputs", "b/x.jsonl", "--out", str(tmp_path)]
    assert cli.main(argv) == 2
    assert f"--out の inputs-x.jsonl ({tmp_path / 'inputs-x.jsonl'}) を 2 回書くことになり" in capsys.readouterr().err


def test_an_output_that_is_a_folder_is_named_as_the_user_knows_it(tmp_path, capsys):
    """Not as the temporary file that is written first and then renamed."""
    (tmp_path / "data" / "train.jsonl").mkdir(parents=True)
    assert cli.main(["data", "demo", "--pages", "40", "--out", str(tmp_path / "data")]) == 1
    err = capsys.readouterr().err
    assert f"エラー: {tmp_path / 'data' / 'train.jsonl'}: フォルダです (ファイルを指定してください)" in err
    assert ".tmp" not in err


def test_train_refuses_a_checkpoint_inside_its_own_output(capsys, tmp_path):
    """train writes out/best at its first epoch: a checkpoint there would be overwritten."""
    (tmp_path / "ft" / "best").mkdir(parents=True)
    err = usage_error(capsys, ["train", "--train", "t", "--dev", "d", "--checkpoint", str(tmp_path / "ft" / "best"),
                               "--out", str(tmp_path / "ft")])
    assert "--checkpoint" in err and "に書く場所にあり、学習中に上書きされます" in err
    # elsewhere under --out (or --out itself) nothing is written: not a usage error
    (tmp_path / "ft" / "pre").mkdir()
    for checkpoint in (tmp_path / "ft" / "pre", tmp_path / "ft"):
        args = cli.parse(cli.build_parser(), ["train", "--train", "t", "--dev", "d", "--checkpoint", str(checkpoint),
                                               "--out", str(tmp_path / "ft")])
        assert cli.train_usage_problem(args) is None


def test_the_graders_os_error_words_are_the_readers():
    """The grader keeps a copy (it runs without solutions): the two say the same."""
    from autograder.cli_messages import OS_ERRORS
    from solutions.data.records import OS_ERROR_REASONS

    assert OS_ERRORS == OS_ERROR_REASONS
