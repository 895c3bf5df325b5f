"""Markdown, HTML and terminal tables of the ranking."""
import re
from datetime import timedelta, timezone
from html.parser import HTMLParser

from autograder.leaderboard import render
from autograder.leaderboard.board import PRIVATE, PUBLIC, RankRow, Standings

JST = timezone(timedelta(hours=9))
T0 = 1_656_633_600.0  # 2022-07-01 00:00 UTC = 09:00 JST


def rows(private=False):
    return [
        RankRow(1, "チーム東京", T0, "BERT-base + 後処理", 87.15184, 87.15184,
                80.0 if private else None, 3, 11),
        RankRow(2, "a|b <script>alert(1)</script>", T0 + 60, "*bold* [link](x)\nnext line",
                50.0, 50.0, 90.12345 if private else None, 1, 12),
    ]


def public_board():
    return Standings(PUBLIC, rows())


def private_board():
    return Standings(PRIVATE, rows(private=True), closed_at=T0 + 3600, selection="public-best")


def test_markdown_table():
    md = render.render_markdown(public_board(), tz=JST)
    lines = md.splitlines()
    header = "| 順位 | チーム | 提出日時 | 説明 | Micro-F1 (Public) |"
    assert header in lines
    assert "|---:|---|---|---|---:|" in lines  # rank and score right-aligned
    assert "| 1 | チーム東京 | 2022-07-01 09:00 | BERT-base + 後処理 | 87.1518 |" in lines
    row2 = next(x for x in lines if x.startswith("| 2 |"))
    assert row2.count(" | ") == 4  # the pipe inside the team name is escaped
    assert r"a\|b \<script\>" in row2 and r"\*bold\* \[link\](x) next line" in row2


def test_markdown_private_columns():
    md = render.render_markdown(private_board(), tz=JST)
    assert "| Micro-F1 (Private) | Micro-F1 (Public) |" in md
    assert "| 80.0000 | 87.1518 |" in md


class _Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.cells, self.urls = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.urls += [v for k, v in attrs if k in ("src", "href")]

    def handle_data(self, data):
        if self.tags and self.tags[-1] in ("td", "th"):
            self.cells.append(data)


def test_html_is_standalone_and_escaped():
    page = render.render_html(private_board(), tz=JST, generated_at=T0)
    assert page.startswith("<!DOCTYPE html>") and '<meta charset="utf-8">' in page
    parsed = _Collector()
    parsed.feed(page)
    assert "script" not in parsed.tags and "link" not in parsed.tags and not parsed.urls
    assert not re.search(r"https?://", page)
    assert "a|b <script>alert(1)</script>" in parsed.cells  # shown as text
    assert "&lt;script&gt;" in page
    assert ["順位", "チーム", "提出日時", "説明", "Micro-F1 (Private)",
            "Micro-F1 (Public)"] == parsed.cells[:6]
    assert '<th class="num">順位</th><th>チーム</th>' in page
    assert "80.0000" in parsed.cells and "2022-07-01 09:00" in parsed.cells


def test_terminal_table_lines_up_wide_characters():
    for board in (public_board(), private_board()):
        text = render.render_terminal(board, tz=JST)
        table = text.splitlines()[3:]
        assert table[0].split() == render.headers(board)[:4] + ["Micro-F1", "(Private)"] * (
            board.phase == PRIVATE) + ["Micro-F1", "(Public)"]
        # the last column is right-aligned, so every line (the Japanese header too) ends
        # at the same display column
        assert len({render.display_width(x) for x in table}) == 1, table
        assert "87.1518" in text and "チーム東京" in text


def test_terminal_columns_start_at_the_same_display_column():
    text = render.render_terminal(public_board(), tz=JST)
    header, rule, first, _ = text.splitlines()[3:]
    # each column starts where its dashes start, counted in display columns
    starts = [i for i, ch in enumerate(rule) if ch == "-" and (i == 0 or rule[i - 1] == " ")]

    def display_starts(line, cells):
        out, pos = [], 0
        for cell in cells:
            at = line.index(cell, pos)
            out.append(render.display_width(line[:at]))
            pos = at + len(cell)
        return out

    date = "2022-07-01 09:00"
    assert display_starts(first, ["チーム東京", date, "BERT-base"]) == starts[1:4]
    assert display_starts(header, ["チーム", "提出日時", "説明"]) == starts[1:4]


def test_terminal_strips_control_characters():
    board = Standings(PUBLIC, [RankRow(1, "evil\x1b[2J", T0, "x\x07", 1.0, 1.0, None, 1, 1)])
    text = render.render_terminal(board, tz=JST)
    assert "\x1b" not in text and "\x07" not in text and "evil?[2J" in text


def test_display_width():
    assert render.display_width("abc") == 3
    assert render.display_width("チーム") == 6
    assert render.display_width("ＡＢ") == 4


def test_score_report_names_the_missing_pages():
    from autograder.leaderboard.scorer import ScoreReport

    report = ScoreReport(tp=3, fp=9, fn=9, pages=40, missing_pages=9, label_space="ene",
                         missing_examples=("1", "2", "3", "4", "5"))
    text = render.format_score_report(report)
    assert ("注意: 正解の 40 ページのうち 9 ページが提出にありません "
            "(page_id: 1, 2, 3, 4, 5 ほか 4 ページ)。IGNORED (9) と予測したものとして採点しました") in text
    assert render.no_common_label_note(report) is None
    labels = ScoreReport(tp=0, fp=2, fn=2, pages=2, missing_pages=0, label_space="any")
    assert render.missing_pages_note(labels) is None
    assert "1 つもありません" in render.format_score_report(labels)


def test_empty_board():
    empty = Standings(PUBLIC, [])
    assert "まだ提出がありません" in render.render_markdown(empty)
    assert "まだ提出がありません" in render.render_html(empty)
    assert "まだ提出がありません" in render.render_terminal(empty)
