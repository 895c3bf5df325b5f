"""Show the leaderboard: a Markdown table, a standalone HTML page, a terminal table;
and the text report of one scored file."""
from __future__ import annotations

import html
import re
import time
import unicodedata
from datetime import datetime, timezone, tzinfo

from autograder.leaderboard.board import PRIVATE, Standings
from autograder.leaderboard.scorer import ScoreReport
from solutions import ene

TITLE = "SHINRA 2022 リーダーボード"
# Column headers, in Japanese like the rest of what learners read; the metric keeps its name.
RANK, TEAM, SUBMITTED, DESCRIPTION = "順位", "チーム", "提出日時", "説明"
PUBLIC_F1, PRIVATE_F1 = "Micro-F1 (Public)", "Micro-F1 (Private)"
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|#~!])")


# --- shared table content ---------------------------------------------------

def format_score(score: float | None) -> str:
    return "-" if score is None else f"{score:.4f}"


def format_time(ts: float, tz: tzinfo | None = None) -> str:
    """``YYYY-MM-DD HH:MM`` in ``tz`` (default: this machine's local time)."""
    moment = datetime.fromtimestamp(ts, tz or timezone.utc)
    if tz is None:
        moment = moment.astimezone()
    return moment.strftime("%Y-%m-%d %H:%M")


def headers(standings: Standings) -> list[str]:
    cols = [RANK, TEAM, SUBMITTED, DESCRIPTION]
    if standings.phase == PRIVATE:
        return cols + [PRIVATE_F1, PUBLIC_F1]
    return cols + [PUBLIC_F1]


def table_rows(standings: Standings, tz: tzinfo | None = None) -> list[list[str]]:
    rows = []
    for r in standings.rows:
        row = [str(r.rank), r.team, format_time(r.submitted_at, tz), r.description]
        if standings.phase == PRIVATE:
            row += [format_score(r.private_f1), format_score(r.public_f1)]
        else:
            row.append(format_score(r.public_f1))
        rows.append(row)
    return rows


def numeric_column(column: str) -> bool:
    """Whether a column holds numbers (right-aligned)."""
    return column in (RANK, "#") or column.startswith("Micro-F1")


def status_line(standings: Standings, tz: tzinfo | None = None) -> str:
    if standings.phase == PRIVATE:
        how = ("各チームの public 最高の提出" if standings.selection == "public-best"
               else "各チームの private 最高の提出")
        closed = format_time(standings.closed_at, tz) if standings.closed_at else "-"
        return f"最終順位 (private スコア, {how}; {closed} 締め切り)"
    if standings.closed_at:  # show --public after the close
        return (f"public スコアの順位 ({format_time(standings.closed_at, tz)} 締め切り済み; "
                "最終順位は private スコアで決まります)")
    return "暫定順位 (public スコア; 締め切り後は private スコアで順位が決まります)"


# --- Markdown ---------------------------------------------------------------

def _md_cell(text: str) -> str:
    return _MD_SPECIAL.sub(r"\\\1", " ".join(text.split()))


def render_markdown(standings: Standings, *, title: str = TITLE,
                    tz: tzinfo | None = None) -> str:
    cols = headers(standings)
    lines = [f"# {_md_cell(title)}", "", status_line(standings, tz), ""]
    if not standings.rows:
        return "\n".join(lines + ["まだ提出がありません。", ""])
    lines.append("| " + " | ".join(cols) + " |")
    lines.append("|" + "|".join("---:" if numeric_column(c) else "---" for c in cols) + "|")
    for row in table_rows(standings, tz):
        lines.append("| " + " | ".join(_md_cell(cell) for cell in row) + " |")
    return "\n".join(lines) + "\n"


# --- HTML -------------------------------------------------------------------

_CSS = """
body { font-family: "Hiragino Sans", "Noto Sans JP", "Yu Gothic", sans-serif;
       margin: 2rem auto; max-width: 60rem; padding: 0 1rem; color: #222; }
h1 { font-size: 1.5rem; }
p.status { color: #555; }
table { border-collapse: collapse; width: 100%; }
th, td { border-bottom: 1px solid #ddd; padding: 0.4rem 0.6rem; text-align: left; }
th { background: #f4f4f4; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr:nth-child(1) td { font-weight: bold; }
footer { margin-top: 1rem; color: #888; font-size: 0.8rem; }
"""


def render_html(standings: Standings, *, title: str = TITLE, tz: tzinfo | None = None,
                generated_at: float | None = None) -> str:
    """A standalone page: inline CSS, no scripts, no external assets."""
    esc = html.escape
    cols = headers(standings)
    generated = format_time(time.time() if generated_at is None else generated_at, tz)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="ja">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{esc(title)}</h1>",
        f'<p class="status">{esc(status_line(standings, tz))}</p>',
    ]
    if standings.rows:
        parts += _html_table(cols, table_rows(standings, tz))
    else:
        parts.append("<p>まだ提出がありません。</p>")
    parts += [f"<footer>{esc(generated)} 作成</footer>", "</body>", "</html>", ""]
    return "\n".join(parts)


def _html_table(cols: list[str], rows: list[list[str]]) -> list[str]:
    esc = html.escape

    def cell(tag: str, col: str, text: str) -> str:
        cls = ' class="num"' if numeric_column(col) else ""
        return f"<{tag}{cls}>{esc(text)}</{tag}>"

    out = ["<table>", "<thead><tr>" + "".join(cell("th", c, c) for c in cols) + "</tr></thead>",
           "<tbody>"]
    for row in rows:
        out.append("<tr>" + "".join(cell("td", c, v) for c, v in zip(cols, row)) + "</tr>")
    out += ["</tbody>", "</table>"]
    return out


# --- terminal ---------------------------------------------------------------

def display_width(text: str) -> int:
    """Columns a terminal uses: 2 for wide (CJK) characters, 0 for combining marks."""
    width = 0
    for ch in text:
        if unicodedata.combining(ch):
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return width


def _printable(text: str) -> str:
    """No control characters (e.g. escape sequences) reach the terminal."""
    return "".join("?" if unicodedata.category(c) == "Cc" else c for c in text)


def _truncate(text: str, width: int) -> str:
    if display_width(text) <= width:
        return text
    out = ""
    for ch in text:
        if display_width(out + ch) > width - 1:
            break
        out += ch
    return out + "…"


def _pad(text: str, width: int, right: bool) -> str:
    gap = " " * (width - display_width(text))
    return gap + text if right else text + gap


def format_table(cols: list[str], rows: list[list[str]], numeric: list[bool],
                 max_width: int = 40) -> str:
    """A plain text table that lines up CJK text."""
    rows = [[_truncate(_printable(c), max_width) for c in row] for row in rows]
    widths = [max([display_width(c)] + [display_width(r[i]) for r in rows])
              for i, c in enumerate(cols)]
    lines = ["  ".join(_pad(c, w, n) for c, w, n in zip(cols, widths, numeric)).rstrip(),
             "  ".join("-" * w for w in widths)]
    for row in rows:
        lines.append("  ".join(_pad(c, w, n) for c, w, n in zip(row, widths, numeric)).rstrip())
    return "\n".join(lines)


def render_terminal(standings: Standings, *, title: str = TITLE,
                    tz: tzinfo | None = None) -> str:
    head = [title, status_line(standings, tz), ""]
    if not standings.rows:
        return "\n".join(head + ["まだ提出がありません。"]) + "\n"
    cols = headers(standings)
    table = format_table(cols, table_rows(standings, tz), [numeric_column(c) for c in cols])
    return "\n".join(head + [table]) + "\n"


# --- one scored file ----------------------------------------------------------

def format_score_report(report: ScoreReport, hierarchy: ene.Hierarchy | None = None) -> str:
    """The text that ``leaderboard score`` prints."""
    hierarchy = hierarchy or ene.default_hierarchy()
    lines = [f"Micro-F1: {report.f1:.4f}",
             f"適合率 (precision): {report.precision:.4f}",
             f"再現率 (recall): {report.recall:.4f}",
             f"TP {report.tp}  FP {report.fp}  FN {report.fn}",
             f"採点したページ: {report.pages}"]
    if report.system:
        lines.insert(0, f"システム: {report.system}")
    lines += [note for note in (missing_pages_note(report), no_common_label_note(report)) if note]
    if report.by_top_level:
        lines += ["", "トップレベルの ENE クラス別:", _group_table(report.by_top_level, hierarchy)]
    return "\n".join(lines) + "\n"


def missing_pages_note(report: ScoreReport) -> str | None:
    """The warning about gold pages the submission left out (None if it has them all),
    with their number and the first few page ids."""
    if not report.missing_pages:
        return None
    missing_as = "IGNORED (9) と予測" if report.label_space == "ene" else "ラベルなしと予測"
    examples = ""
    if report.missing_examples:
        more = report.missing_pages - len(report.missing_examples)
        examples = (" (page_id: " + ", ".join(_printable(p) for p in report.missing_examples)
                    + (f" ほか {more} ページ" if more > 0 else "") + ")")
    return (f"注意: 正解の {report.pages} ページのうち {report.missing_pages} ページが提出に"
            f"ありません{examples}。{missing_as}したものとして採点しました。"
            "提出し忘れたページがないか確かめてください")


def no_common_label_note(report, where: str = "") -> str | None:
    """The warning for predictions of which not one label is in the gold (None otherwise):
    labels written another way (ENE ids against names, ...)? report: a ScoreReport or the
    Counts of one part; where: which pages were looked at ("Public のページで", ...)."""
    if report.tp == 0 and report.fp > 0:
        return (f"注意: {where}正解と一致した予測ラベルが 1 つもありません。"
                "正解と提出で、ラベルの書き方 (ENE の ID か名前か、など) が同じか確かめてください")
    return None


def _group_table(groups: dict, hierarchy: ene.Hierarchy) -> str:
    cols = ["クラス", "TP", "FP", "FN", "適合率", "再現率", "F1"]
    rows = [[f"{top} {hierarchy.name(top)}" if top in hierarchy else top,
             str(c.tp), str(c.fp), str(c.fn),
             f"{c.precision:.4f}", f"{c.recall:.4f}", f"{c.f1:.4f}"]
            for top, c in groups.items()]
    return format_table(cols, rows, [False] + [True] * 6)
