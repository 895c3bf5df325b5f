"""The SQLite leaderboard: split, ranking, rate limit, close, crash safety, concurrency."""
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from autograder.leaderboard import board as board_module
from autograder.leaderboard import cli, render
from autograder.leaderboard.board import (
    PRIVATE, PUBLIC, Board, BoardClosed, BoardError, RateLimited, SubmissionRecord,
    split_function)
from autograder.leaderboard.scorer import Counts, InvalidSubmission

ROOT = Path(__file__).resolve().parents[1]
SEED = "workshop"
HOUR = 3600.0
T0 = 1_656_633_600.0  # 2022-07-01 00:00 UTC
PAGES = [str(1000 + i) for i in range(40)]
PART = split_function(SEED, 0.5)
PUBLIC_PAGES = [p for p in PAGES if PART(p) == PUBLIC]
PRIVATE_PAGES = [p for p in PAGES if PART(p) == PRIVATE]
RIGHT, WRONG = "1.1", "1.2"


def line(pid, labels, key):
    entries = [{"prob": 1 if key.startswith("HAND") else 0.5, "ENE": x} for x in labels]
    return json.dumps({"page_id": pid, "title": "t", "ENEs": {key: entries}})


@pytest.fixture
def gold(tmp_path) -> Path:
    path = tmp_path / "gold.jsonl"
    path.write_text("".join(line(p, [RIGHT], "HAND.AIP.202204") + "\n" for p in PAGES))
    return path


def submission(tmp_path, name, right_public: int, right_private: int) -> Path:
    """A file right on the first ``right_public`` public and ``right_private`` private pages
    (wrong elsewhere)."""
    right = set(PUBLIC_PAGES[:right_public]) | set(PRIVATE_PAGES[:right_private])
    path = tmp_path / f"{name}.jsonl"
    path.write_text("".join(line(p, [RIGHT if p in right else WRONG], "AUTO.T.202207") + "\n"
                            for p in PAGES))
    return path


def f1(right: int, total: int) -> float:
    return 100 * 2 * right / (2 * right + 2 * (total - right))


@pytest.fixture
def board(tmp_path, gold):
    with Board.create(tmp_path / "lb.sqlite3", gold, split_seed=SEED) as b:
        yield b


# --- the split ------------------------------------------------------------------

def test_split_is_stable_and_known():
    # Fixed values: changing the hash scheme would reshuffle running boards.
    ids = ["1478897", "8881", "1", "2", "3", "4"]
    assert [split_function("shinra", 0.5)(p) for p in ids] == [
        PUBLIC, PUBLIC, PRIVATE, PUBLIC, PUBLIC, PRIVATE]
    # the documented rule: SHA-256 of seed + NUL + page id, first 8 bytes < fraction · 2^64
    for p in ids:
        value = int.from_bytes(hashlib.sha256(f"shinra\0{p}".encode()).digest()[:8], "big")
        assert (value < 0.5 * 2**64) == (split_function("shinra", 0.5)(p) == PUBLIC)
    assert [PART(p) for p in PAGES] == [split_function(SEED, 0.5)(p) for p in PAGES]
    assert 0 < len(PUBLIC_PAGES) < len(PAGES)


def test_split_fraction_and_seed():
    ids = [str(i) for i in range(20000)]
    for fraction in (0.1, 0.3, 0.5, 0.8):
        share = sum(split_function("s", fraction)(p) == PUBLIC for p in ids) / len(ids)
        assert share == pytest.approx(fraction, abs=0.015)
    small = {p for p in ids if split_function("s", 0.3)(p) == PUBLIC}
    large = {p for p in ids if split_function("s", 0.6)(p) == PUBLIC}
    assert small < large  # growing the public part only adds pages
    other = {p for p in ids if split_function("t", 0.3)(p) == PUBLIC}
    assert other != small


@pytest.mark.parametrize("fraction", [0, 1, -0.5, 1.5])
def test_split_fraction_must_be_inside_0_1(tmp_path, gold, fraction):
    with pytest.raises(BoardError):
        Board.create(tmp_path / "lb.sqlite3", gold, public_fraction=fraction)


def test_board_keeps_its_settings(tmp_path, gold):
    path = tmp_path / "lb.sqlite3"
    Board.create(path, gold, public_fraction=0.25, max_submissions=5).close_connection()
    with Board.open(path) as b:
        config = b.config
    assert (config.public_fraction, config.max_submissions, config.window_hours) == (0.25, 5, 24)
    assert len(config.split_seed) >= 16  # random unless given
    with pytest.raises(BoardError, match="既に"):
        Board.create(path, gold)


def test_scores_split_public_and_private(tmp_path, board):
    record = board.submit("A", submission(tmp_path, "a", 5, 2), "first", now=T0)
    assert record.public_f1 == pytest.approx(f1(5, len(PUBLIC_PAGES)))
    assert record.private_f1 == pytest.approx(f1(2, len(PRIVATE_PAGES)))
    assert record.public.tp + record.private.tp == 7
    assert len(record.file_sha256) == 64 and record.file_name == "a.jsonl"


# --- ranking --------------------------------------------------------------------

def test_best_submission_per_team_ranked(tmp_path, board):
    board.submit("A", submission(tmp_path, "a1", 3, 0), "a1", now=T0)
    board.submit("A", submission(tmp_path, "a2", 9, 0), "a2", now=T0 + 1)
    board.submit("A", submission(tmp_path, "a3", 4, 0), "a3", now=T0 + 2)
    board.submit("B", submission(tmp_path, "b1", 6, 0), "b1", now=T0 + 3)
    rows = board.standings().rows
    assert [(r.rank, r.team, r.description, r.entries) for r in rows] == [
        (1, "A", "a2", 3), (2, "B", "b1", 1)]
    assert rows[0].private_f1 is None  # hidden before close


def test_ties_go_to_the_earlier_submission(tmp_path, board):
    board.submit("Late", submission(tmp_path, "l", 5, 0), now=T0 + 10)
    board.submit("Early", submission(tmp_path, "e", 5, 0), now=T0 + 5)
    board.submit("Early", submission(tmp_path, "e2", 5, 0), "same score, later", now=T0 + 20)
    rows = board.standings().rows
    assert [r.team for r in rows] == ["Early", "Late"]
    assert rows[0].submitted_at == T0 + 5


def test_ties_are_judged_on_the_four_decimals_shown():
    def record(sub_id, at, counts):
        return SubmissionRecord(sub_id, f"team{sub_id}", at, "", "f", "h", counts, counts)

    higher_but_later = record(2, T0 + 1, Counts(tp=1_000_000))  # 100.0
    earlier = record(1, T0, Counts(tp=1_000_000, fp=1))  # 99.99995 -> shown as 100.0000
    rows = board_module._rank([higher_but_later, earlier], PUBLIC, "public-best")
    assert [r.team for r in rows] == ["team1", "team2"]


def test_private_ranking_after_close(tmp_path, board):
    board.submit("A", submission(tmp_path, "a1", 9, 1), "public star", now=T0)
    board.submit("A", submission(tmp_path, "a2", 2, 8), "private star", now=T0 + 1)
    board.submit("B", submission(tmp_path, "b", 5, 5), now=T0 + 2)
    with pytest.raises(BoardError):
        board.standings(PRIVATE)  # not before close
    final = board.close(now=T0 + 3)
    assert final.phase == PRIVATE and final.selection == "public-best"
    # A is ranked by its best public submission, whose private score is low
    assert [(r.team, r.description) for r in final.rows] == [("B", ""), ("A", "public star")]
    assert final.rows[1].private_f1 == pytest.approx(f1(1, len(PRIVATE_PAGES)))
    assert board.standings(PUBLIC).rows[0].team == "A"  # the public board stays available


def test_close_with_private_best_selection(tmp_path, board):
    board.submit("A", submission(tmp_path, "a1", 9, 1), "public star", now=T0)
    board.submit("A", submission(tmp_path, "a2", 2, 8), "private star", now=T0 + 1)
    board.submit("B", submission(tmp_path, "b", 5, 5), now=T0 + 2)
    final = board.close("private-best", now=T0 + 3)
    assert [(r.team, r.description) for r in final.rows] == [("A", "private star"), ("B", "")]


def test_no_submissions_after_close(tmp_path, board):
    board.close(now=T0)
    with pytest.raises(BoardClosed):
        board.submit("A", submission(tmp_path, "a", 1, 1), now=T0 + 1)
    with pytest.raises(BoardClosed):
        board.close()


# --- rules ----------------------------------------------------------------------

def test_rate_limit_three_per_24_hours(tmp_path, board):
    sub = submission(tmp_path, "a", 1, 1)
    for i in range(3):
        board.submit("A", sub, now=T0 + i * HOUR)
    with pytest.raises(RateLimited, match="3 回"):
        board.submit("A", sub, now=T0 + 23 * HOUR)
    board.submit("B", sub, now=T0 + 23 * HOUR)  # other teams are not affected
    board.submit("A", sub, now=T0 + 24 * HOUR + 1)  # the first one left the window
    with pytest.raises(RateLimited):
        board.submit("A", sub, now=T0 + 24 * HOUR + 2)
    assert len(board.submissions("A")) == 4


def test_a_gold_file_gone_since_the_board_was_made_is_said_in_japanese(tmp_path, board, gold):
    gold.unlink()
    with pytest.raises(BoardError, match=rf"正解ファイルを読めません: {gold} \(見つかりません\)"):
        board.submit("A", submission(tmp_path, "a", 1, 1), now=T0)


def test_rejected_submission_does_not_count(tmp_path, board):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"page_id": "nope"}\n')
    for i in range(5):
        with pytest.raises(InvalidSubmission):
            board.submit("A", bad, now=T0 + i)
    assert board.submissions() == [] and board.teams() == []
    for i in range(3):
        board.submit("A", submission(tmp_path, "a", 1, 1), now=T0 + 10 + i)


def test_a_broken_file_is_reported_before_the_limit(tmp_path, board):
    sub = submission(tmp_path, "a", 1, 1)
    for i in range(3):
        board.submit("A", sub, now=T0 + i)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"page_id": "nope"}\n')
    with pytest.raises(InvalidSubmission) as refused:  # not RateLimited: the file comes first
        board.submit("A", bad, now=T0 + 10)
    assert f"{bad}:1: page_id:" in str(refused.value)
    with pytest.raises(RateLimited, match="記録せず、回数にも数えません"):
        board.submit("A", sub, now=T0 + 11)  # a valid file: now the limit
    assert len(board.submissions("A")) == 3  # neither refusal was stored
    board.submit("A", sub, now=T0 + 24 * HOUR + 0.5)  # the first left the window: one more
    with pytest.raises(RateLimited):
        board.submit("A", sub, now=T0 + 24 * HOUR + 0.6)
    assert len(board.submissions("A")) == 4


def test_configurable_limit(tmp_path, gold):
    with Board.create(tmp_path / "lb.sqlite3", gold, max_submissions=1,
                      window_hours=1) as b:
        sub = submission(tmp_path, "a", 1, 1)
        b.submit("A", sub, now=T0)
        with pytest.raises(RateLimited):
            b.submit("A", sub, now=T0 + 0.5 * HOUR)
        b.submit("A", sub, now=T0 + HOUR + 1)
    with Board.create(tmp_path / "free.sqlite3", gold, max_submissions=0) as b:
        for i in range(6):
            b.submit("A", sub, now=T0)


def test_team_names_are_normalised(tmp_path, board):
    sub = submission(tmp_path, "a", 1, 1)
    board.submit("  チーム　Ａ ", sub, now=T0)
    board.submit("チーム A", sub, now=T0 + 1)
    board.submit("チーム a", sub, now=T0 + 2)  # case does not make another team (nor 3 more submissions)
    assert board.teams() == ["チーム A"]
    with pytest.raises(RateLimited):
        board.submit("ﾁｰﾑ a", sub, now=T0 + 3)
    assert len(board.submissions("チーム a")) == 3
    with pytest.raises(BoardError):
        board.submit("   ", sub)
    with pytest.raises(BoardError):
        board.submit("x" * 100, sub)


def test_changed_gold_is_refused(tmp_path, board, gold):
    gold.write_text(gold.read_text() + line("9999", [RIGHT], "HAND.AIP.202204") + "\n")
    with pytest.raises(BoardError, match="変わっています"):
        board.submit("A", submission(tmp_path, "a", 1, 1))


def test_not_a_board(tmp_path):
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(BoardError):
        Board.open(junk)
    with pytest.raises(BoardError, match="ありません"):
        Board.open(tmp_path / "missing.sqlite3")


# --- crash safety ---------------------------------------------------------------

def test_failure_inside_the_transaction_stores_nothing(tmp_path, board, monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("boom")

    original = board_module._team_id

    def team_then_explode(conn, team, now):
        original(conn, team, now)  # the team row is written...
        explode()  # ...then the process fails before the submission row

    monkeypatch.setattr(board_module, "_team_id", team_then_explode)
    with pytest.raises(RuntimeError):
        board.submit("A", submission(tmp_path, "a", 1, 1), now=T0)
    assert board.teams() == [] and board.submissions() == []


def test_killed_process_mid_submit_stores_nothing(tmp_path, gold):
    db = tmp_path / "lb.sqlite3"
    sub = submission(tmp_path, "a", 1, 1)
    with Board.create(db, gold, split_seed=SEED) as b:
        b.submit("Earlier", sub, "kept")
    script = textwrap.dedent(f"""
        import os
        from autograder.leaderboard import board as m
        original = m._team_id
        def team_then_die(conn, team, now):
            original(conn, team, now)
            os._exit(9)  # no rollback, no cleanup: like a power cut in the process
        m._team_id = team_then_die
        m.Board.open({str(db)!r}).submit("A", {str(sub)!r})
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT)
    assert result.returncode == 9
    with Board.open(db) as b:
        assert b.teams() == ["Earlier"]  # nothing of "A", nothing lost
        assert [s.description for s in b.submissions()] == ["kept"]
        b.submit("A", sub)  # and the board still works
        assert len(b.submissions()) == 2
    assert sqlite3.connect(db).execute("PRAGMA integrity_check").fetchone()[0] == "ok"


# --- concurrency ----------------------------------------------------------------

def spawn_submits(db, gold, subs_and_teams):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    procs = [subprocess.Popen(
        [sys.executable, "-m", "autograder.leaderboard.cli", "submit", str(sub), "--team", team,
         "-m", sub.stem, "--db", str(db), "--gold", str(gold), "--split-seed", SEED],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for sub, team in subs_and_teams]
    return [(p.wait(timeout=120), p.stdout.read(), p.stderr.read()) for p in procs]


def test_concurrent_submits_are_each_stored_once(tmp_path, gold):
    db = tmp_path / "lb.sqlite3"  # created by whichever process comes first
    jobs = [(submission(tmp_path, f"t{t}-s{s}", t + s, s), f"team{t}")
            for t in range(4) for s in range(2)]
    results = spawn_submits(db, gold, jobs)
    assert [code for code, _, _ in results] == [0] * len(jobs), results
    with Board.open(db) as b:
        stored = sorted((s.team, s.description) for s in b.submissions())
        ids = [s.id for s in b.submissions()]
    assert stored == sorted((team, sub.stem) for sub, team in jobs)
    assert len(set(ids)) == len(jobs)


def test_concurrent_submits_respect_the_rate_limit(tmp_path, gold):
    db = tmp_path / "lb.sqlite3"
    Board.create(db, gold, split_seed=SEED).close_connection()
    jobs = [(submission(tmp_path, f"s{i}", i, i), "same team") for i in range(6)]
    results = spawn_submits(db, gold, jobs)
    assert sorted(code for code, _, _ in results) == [0, 0, 0, 1, 1, 1], results
    assert sum("回まで提出できます" in err for _, _, err in results) == 3
    with Board.open(db) as b:
        assert len(b.submissions()) == 3


# --- the command line -----------------------------------------------------------

def test_cli_board_flow(tmp_path, gold, capsys):
    db = str(tmp_path / "lb.sqlite3")
    a = submission(tmp_path, "a", 7, 3)
    assert cli.main(["submit", str(a), "--team", "A", "--db", db]) == 1  # no --gold yet
    assert "--gold" in capsys.readouterr().err
    assert cli.main(["submit", str(a), "--team", "A", "-m", "base", "--db", db,
                     "--gold", str(gold), "--split-seed", SEED]) == 0
    out = capsys.readouterr().out
    assert f"{f1(7, len(PUBLIC_PAGES)):.4f}" in out and "1 / 3" in out
    assert f"{f1(3, len(PRIVATE_PAGES)):.4f}" not in out  # private stays hidden
    assert cli.main(["submit", str(a), "--team", "A", "--db", db,
                     "--public-fraction", "0.3"]) == 1
    assert "作成時" in capsys.readouterr().err
    assert cli.main(["show", "--db", db]) == 0
    out = capsys.readouterr().out
    assert "Micro-F1 (Public)" in out and "暫定順位" in out
    assert cli.main(["show", "--db", db, "--team", "A"]) == 0
    assert "base" in capsys.readouterr().out
    assert cli.main(["render", "--db", db, "--out-dir", str(tmp_path / "site")]) == 0
    assert "| 1 | A |" in (tmp_path / "site" / "leaderboard.md").read_text(encoding="utf-8")
    assert cli.main(["close", "--db", db]) == 0
    assert "Micro-F1 (Private)" in capsys.readouterr().out
    assert cli.main(["show", "--db", db, "--public"]) == 0  # the public board after the close: not provisional
    out = capsys.readouterr().out
    assert "締め切り済み" in out and "暫定" not in out and "Micro-F1 (Public)" in out
    assert cli.main(["submit", str(a), "--team", "A", "--db", db]) == 1
    assert "締め切" in capsys.readouterr().err


def cli_board(tmp_path, gold, capsys, *extra) -> str:
    db = str(tmp_path / "lb.sqlite3")
    assert cli.main(["submit", str(submission(tmp_path, "first", 1, 1)), "--team", "Z",
                     "--db", db, "--gold", str(gold), "--split-seed", SEED, *extra]) == 0
    capsys.readouterr()
    return db


def test_cli_submit_warns_about_missing_pages_and_records_the_submission(tmp_path, gold, capsys):
    db = cli_board(tmp_path, gold, capsys)
    half = tmp_path / "half.jsonl"
    half.write_text("".join(line(p, [RIGHT], "AUTO.T.202207") + "\n" for p in PAGES[:25]))
    assert cli.main(["submit", str(half), "--team", "A", "--db", db]) == 0
    captured = capsys.readouterr()
    assert "受け付けました" in captured.out and "注意" not in captured.out
    assert ("正解の 40 ページのうち 15 ページが提出にありません "
            "(page_id: 1025, 1026, 1027, 1028, 1029 ほか 10 ページ)。"
            "IGNORED (9) と予測したものとして採点しました") in captured.err
    assert "1 つもありません" not in captured.err
    with Board.open(db) as b:
        (stored,) = b.submissions("A")  # recorded, the missing pages scored as "9"
    assert stored.public.fp + stored.private.fp == 15
    assert stored.report is None  # the report is not stored, only handed to the CLI
    assert cli.main(["submit", str(submission(tmp_path, "full", 1, 1)), "--team", "A",
                     "--db", db]) == 0
    assert capsys.readouterr().err == ""  # a complete file: no warning


def test_cli_submit_warns_when_no_label_is_in_common_on_the_public_pages(tmp_path, gold, capsys):
    db = cli_board(tmp_path, gold, capsys, "--max-submissions", "0")
    assert cli.main(["submit", str(submission(tmp_path, "wrong", 0, 0)), "--team", "A",
                     "--db", db]) == 0
    captured = capsys.readouterr()
    assert "Micro-F1 (Public): 0.0000" in captured.out
    assert "Public のページでは正解と一致した予測ラベルが 1 つもありません" in captured.err
    assert "提出にありません" not in captured.err
    # judged on the public pages alone: right private pages must not show through
    assert cli.main(["submit", str(submission(tmp_path, "private", 0, 5)), "--team", "A",
                     "--db", db]) == 0
    assert "1 つもありません" in capsys.readouterr().err
    assert cli.main(["submit", str(submission(tmp_path, "public", 1, 0)), "--team", "A",
                     "--db", db]) == 0
    assert "1 つもありません" not in capsys.readouterr().err


def test_cli_over_the_limit_a_broken_file_gets_its_errors(tmp_path, gold, capsys):
    db = cli_board(tmp_path, gold, capsys, "--max-submissions", "1")  # team Z used its one
    bad = tmp_path / "bad.jsonl"
    bad.write_text(line(PAGES[0], ["not-an-id"], "AUTO.T.202207") + "\n" + "x\n")
    assert cli.main(["submit", str(bad), "--team", "Z", "--db", db]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "提出ファイルに 2 件の誤りがあります" in captured.err
    assert f"{bad}:1: ENEs.AUTO.T.202207[0].ENE:" in captured.err and f"{bad}:2:" in captured.err
    assert "回まで提出できます" not in captured.err
    # a valid file over the limit: refused, not recorded, its score not shown
    valid = submission(tmp_path, "valid", 7, 3)
    assert cli.main(["submit", str(valid), "--team", "z", "--db", db]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "回まで提出できます" in captured.err
    assert f"{f1(7, len(PUBLIC_PAGES)):.4f}" not in captured.err
    with Board.open(db) as b:
        assert [s.file_name for s in b.submissions()] == ["first.jsonl"]


def test_cli_tables_have_japanese_headers_that_line_up(tmp_path, gold, capsys):
    db = cli_board(tmp_path, gold, capsys)
    assert cli.main(["submit", str(submission(tmp_path, "b", 9, 2)), "--team", "チーム東京",
                     "-m", "BERT-base ＋ 後処理", "--db", db]) == 0
    capsys.readouterr()
    assert cli.main(["show", "--db", db]) == 0
    table = capsys.readouterr().out.splitlines()[3:]
    assert table[0].split() == ["順位", "チーム", "提出日時", "説明", "Micro-F1", "(Public)"]
    assert [x.split()[:2] for x in table[2:]] == [["1", "チーム東京"], ["2", "Z"]]
    assert len({render.display_width(x) for x in table}) == 1, table
    assert cli.main(["show", "--db", db, "--team", "チーム東京"]) == 0
    table = capsys.readouterr().out.splitlines()[1:]
    assert table[0].split() == ["#", "提出日時", "説明", "Micro-F1", "(Public)"]
    assert len({render.display_width(x) for x in table}) == 1, table
    assert cli.main(["close", "--db", db]) == 0
    table = capsys.readouterr().out.splitlines()[4:]
    assert table[0].split()[-4:] == ["Micro-F1", "(Private)", "Micro-F1", "(Public)"]
    assert len({render.display_width(x) for x in table}) == 1, table
    assert cli.main(["show", "--db", db, "--team", "チーム東京"]) == 0
    table = capsys.readouterr().out.splitlines()[1:]
    assert table[0].split()[-2:] == ["Micro-F1", "(Private)"]
    assert len({render.display_width(x) for x in table}) == 1, table
    assert cli.main(["render", "--db", db, "--out-dir", str(tmp_path / "site")]) == 0
    md = (tmp_path / "site" / "leaderboard.md").read_text(encoding="utf-8")
    assert "| 順位 | チーム | 提出日時 | 説明 | Micro-F1 (Private) | Micro-F1 (Public) |" in md


def test_cli_db_from_environment(tmp_path, gold, monkeypatch, capsys):
    monkeypatch.setenv(board_module.DB_ENV, str(tmp_path / "env.sqlite3"))
    a = submission(tmp_path, "a", 1, 1)
    assert cli.main(["submit", str(a), "--team", "A", "--gold", str(gold)]) == 0
    assert (tmp_path / "env.sqlite3").is_file()
    assert cli.main(["show"]) == 0


def test_cli_without_a_board(tmp_path, gold, capsys):
    db = str(tmp_path / "none.sqlite3")
    assert cli.main(["show", "--db", db]) == 1
    assert "ありません" in capsys.readouterr().err
    assert cli.main(["show", "--db", str(tmp_path)]) == 1
    assert f"{tmp_path}: フォルダです" in capsys.readouterr().err
    Board.create(db, gold).close_connection()
    assert cli.main(["show", "--db", db]) == 0
    assert "まだ提出がありません" in capsys.readouterr().out
    assert cli.main(["render", "--db", db, "--out-dir", str(tmp_path / "out")]) == 0
    assert "まだ提出がありません" in (tmp_path / "out" / "leaderboard.html").read_text("utf-8")


def test_cli_a_folder_as_the_board_is_named_by_every_command(tmp_path, gold, capsys):
    """--db FOLDER: submit (with --gold or without) says it is a folder, as show does."""
    a = submission(tmp_path, "a", 1, 1)
    for extra in ([], ["--gold", str(gold)]):
        assert cli.main(["submit", str(a), "--team", "A", "--db", str(tmp_path), *extra]) == 1
        err = capsys.readouterr().err
        assert err == f"{tmp_path}: フォルダです (リーダーボードのファイルを --db で指定してください)\n", err
    assert cli.main(["submit", str(a), "--team", "A", "--db", str(tmp_path / "none.sqlite3")]) == 1
    assert "--gold" in capsys.readouterr().err and not (tmp_path / "none.sqlite3").exists()


def simple_file(path: Path, labels: dict) -> Path:
    path.write_text("".join(json.dumps({"page_id": p, "labels": x}) + "\n" for p, x in labels.items()))
    return path


def test_the_label_space_is_decided_when_the_board_is_made(tmp_path):
    # Simple-form gold of ENE ids (the dev.jsonl of `data shinra`) is the SHINRA task:
    # the board stores "ene", so a page left out counts as predicting IGNORED (9).
    gold = simple_file(tmp_path / "gold.jsonl", {p: [RIGHT] for p in PAGES})
    half = simple_file(tmp_path / "half.jsonl", {p: [RIGHT] for p in PAGES[:20]})
    with Board.create(tmp_path / "new.sqlite3", gold, split_seed=SEED) as b:
        assert b.config.label_space == "ene"
        stored = b.submit("A", half, now=T0)
        assert stored.public.fp + stored.private.fp == 20  # the 20 missing pages: "9"


def test_a_board_from_before_the_label_space_was_stored_keeps_scoring_as_before(tmp_path):
    gold = simple_file(tmp_path / "gold.jsonl", {p: [RIGHT] for p in PAGES})
    half = simple_file(tmp_path / "half.jsonl", {p: [RIGHT] for p in PAGES[:20]})
    path = tmp_path / "old.sqlite3"
    with Board.create(path, gold, split_seed=SEED):
        pass
    with sqlite3.connect(path) as conn:  # as older versions stored it
        config = json.loads(conn.execute("SELECT value FROM meta WHERE key = 'config'").fetchone()[0])
        conn.execute("UPDATE meta SET value = ? WHERE key = 'config'",
                     (json.dumps({**config, "label_space": "auto"}),))
    with Board.open(path) as b:
        assert b.load_gold().label_space == "any"  # simple-form gold was scored with any labels
        stored = b.submit("A", half, now=T0)
        assert stored.public.fp + stored.private.fp == 0 and stored.public.fn + stored.private.fn == 20


def test_cli_a_board_in_a_folder_not_made_yet(tmp_path, gold, capsys):
    """The first submit makes the folder, as the other commands make their output folders."""
    db = tmp_path / "class" / "2026" / "lb.sqlite3"
    assert cli.main(["submit", str(submission(tmp_path, "a", 1, 1)), "--team", "A", "--db", str(db),
                     "--gold", str(gold), "--split-seed", SEED]) == 0
    assert db.is_file() and cli.main(["show", "--db", str(db)]) == 0
