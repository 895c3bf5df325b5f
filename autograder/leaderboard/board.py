"""The leaderboard store: teams and their scored submissions in one SQLite file.

Every change happens in one ``BEGIN IMMEDIATE`` transaction, so a crash mid-submit
stores nothing half-written, and submits from several processes queue up on the
file's lock instead of overwriting each other.

The gold pages split deterministically into a public and a private part: a page is
public when the SHA-256 of ``seed + page_id`` falls below the public fraction.
The board shows public scores until ``close``, then the private ranking.
"""
from __future__ import annotations

import hashlib
import json
import re
import secrets
import sqlite3
import time
import unicodedata
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator

from autograder.leaderboard.scorer import (
    Counts, Gold, ScoreReport, load_gold, score_submission)
from solutions.data import describe_os_error

PUBLIC, PRIVATE = "public", "private"
SELECTIONS = ("public-best", "private-best")
DEFAULT_DB = "leaderboard.sqlite3"
DB_ENV = "BERT_WORKSHOP_LEADERBOARD_DB"
SCHEMA_VERSION = 1
MAX_TEAM_NAME = 40
MAX_DESCRIPTION = 200

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS teams (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS submissions (
    id            INTEGER PRIMARY KEY,
    team_id       INTEGER NOT NULL REFERENCES teams(id),
    submitted_at  REAL NOT NULL,
    description   TEXT NOT NULL,
    file_name     TEXT NOT NULL,
    file_sha256   TEXT NOT NULL,
    public_tp     INTEGER NOT NULL,
    public_fp     INTEGER NOT NULL,
    public_fn     INTEGER NOT NULL,
    private_tp    INTEGER NOT NULL,
    private_fp    INTEGER NOT NULL,
    private_fn    INTEGER NOT NULL,
    public_f1     REAL NOT NULL,
    private_f1    REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS submissions_by_team ON submissions (team_id, submitted_at);
"""


class BoardError(Exception):
    """A board operation refused, with a message for the user (Japanese)."""


class BoardClosed(BoardError):
    pass


class RateLimited(BoardError):
    pass


_CLOSED = "リーダーボードは締め切られました。提出は受け付けません"


# --- the public/private split -----------------------------------------------

def _unit_interval(seed: str, page_id: str) -> float:
    digest = hashlib.sha256(f"{seed}\0{page_id}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_function(seed: str, public_fraction: float) -> Callable[[str], str]:
    """``page_id -> "public" | "private"``; stable for a seed, and a page public at
    some fraction stays public at any larger one."""
    _check_fraction(public_fraction)

    def part(page_id: str) -> str:
        return PUBLIC if _unit_interval(seed, page_id) < public_fraction else PRIVATE

    return part


def _check_fraction(fraction: float) -> None:
    if not 0 < fraction < 1:
        raise BoardError(f"public の割合は 0 より大きく 1 より小さくしてください: {fraction}")


# --- records ----------------------------------------------------------------

@dataclass(frozen=True)
class BoardConfig:
    gold_path: str
    gold_sha256: str
    split_seed: str
    public_fraction: float = 0.5
    max_submissions: int = 3  # per team per window; 0 means no limit
    window_hours: float = 24.0
    label_space: str = "auto"


@dataclass(frozen=True)
class SubmissionRecord:
    id: int
    team: str
    submitted_at: float
    description: str
    file_name: str
    file_sha256: str
    public: Counts
    private: Counts
    # The whole score report (missing pages, ...): only on the record ``submit`` returns;
    # it is not stored. It covers private pages too: show from it nothing of the private part.
    report: ScoreReport | None = field(default=None, compare=False, repr=False)

    @property
    def public_f1(self) -> float:
        return self.public.f1

    @property
    def private_f1(self) -> float:
        return self.private.f1


@dataclass(frozen=True)
class RankRow:
    rank: int
    team: str
    submitted_at: float
    description: str
    score: float  # the ranked score: public before close, private after
    public_f1: float
    private_f1: float | None  # None until the board is closed
    entries: int
    submission_id: int


@dataclass(frozen=True)
class Standings:
    phase: str  # "public" or "private"
    rows: list[RankRow]
    closed_at: float | None = None
    selection: str | None = None


# --- small helpers ----------------------------------------------------------

def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _clean_text(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    text = "".join(" " if unicodedata.category(c).startswith("C") else c for c in text)
    return re.sub(r"\s+", " ", text).strip()


def clean_team_name(name: str) -> str:
    cleaned = _clean_text(name)
    if not cleaned:
        raise BoardError("チーム名が空です")
    if len(cleaned) > MAX_TEAM_NAME:
        raise BoardError(f"チーム名は {MAX_TEAM_NAME} 文字までです")
    return cleaned


def clean_description(text: str) -> str:
    cleaned = _clean_text(text or "")
    if len(cleaned) > MAX_DESCRIPTION:
        raise BoardError(f"説明は {MAX_DESCRIPTION} 文字までです")
    return cleaned


def _score_key(score: float, submitted_at: float, sub_id: int) -> tuple:
    """Higher score (as shown, 4 decimals) first; ties go to the earlier submission."""
    return (-round(score, 4), submitted_at, sub_id)


def _format_local(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


# --- the board --------------------------------------------------------------

class Board:
    """A leaderboard in one SQLite file. Use ``Board.create`` or ``Board.open``."""

    def __init__(self, path: str | Path, *, timeout: float = 60.0):
        self.path = Path(path)
        if self.path.is_dir():  # here, so that creating, opening and every command say it alike
            raise BoardError(f"{path}: フォルダです (リーダーボードのファイルを --db で指定してください)")
        try:
            self._conn = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
        except sqlite3.Error as e:
            raise BoardError(f"リーダーボードのファイルを開けません: {path} ({e})") from e
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA foreign_keys = ON")

    def close_connection(self) -> None:
        self._conn.close()

    def __enter__(self) -> "Board":
        return self

    def __exit__(self, *exc) -> None:
        self.close_connection()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: all of it is stored, or none of it."""
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            if "locked" in str(e) or "busy" in str(e):
                raise BoardError("リーダーボードが混み合っています。"
                                 "しばらくしてからやり直してください") from e
            raise
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    # creating and opening

    @classmethod
    def create(cls, path: str | Path, gold_path: str | Path, *, public_fraction: float = 0.5,
               split_seed: str | None = None, max_submissions: int = 3,
               window_hours: float = 24.0, label_space: str = "auto",
               exist_ok: bool = False) -> "Board":
        """Make a new board for the gold file; with ``exist_ok``, an existing board made
        from the same gold file is opened instead (its own settings stay)."""
        _check_fraction(public_fraction)
        if max_submissions < 0 or window_hours <= 0:
            raise BoardError("提出回数の上限は 0 以上、時間枠は正の数にしてください")
        settings = dict(split_seed=split_seed or secrets.token_hex(8),
                        public_fraction=public_fraction, max_submissions=max_submissions,
                        window_hours=window_hours, label_space=label_space)
        Path(path).parent.mkdir(parents=True, exist_ok=True)  # as every output of the workshop's commands
        board = cls(path)
        with board._closed_on_error():
            # The gold file is read under the write lock, so processes that create
            # the same board at once end up with one board.
            with board._transaction() as conn:
                _create_tables(conn)
                if board._meta("config") is None:
                    _set_meta(conn, "schema_version", SCHEMA_VERSION)
                    _set_meta(conn, "config", asdict(_new_config(gold_path, settings)))
                    return board
            board._check_existing(gold_path, exist_ok)
        return board

    @contextmanager
    def _closed_on_error(self):
        """On any error, close the connection; a file that is no SQLite database
        becomes a BoardError that says so."""
        try:
            yield
        except sqlite3.DatabaseError as e:
            self.close_connection()
            raise BoardError(f"{self.path} はリーダーボードのファイルではありません ({e})") from e
        except BaseException:
            self.close_connection()
            raise

    def _check_existing(self, gold_path: str | Path, exist_ok: bool) -> None:
        if not exist_ok:
            raise BoardError(f"{self.path} には既にリーダーボードがあります")
        if file_sha256(gold_path) != self.config.gold_sha256:
            raise BoardError(f"{self.path} は別の正解ファイルで作られたリーダーボードです")

    @classmethod
    def open(cls, path: str | Path) -> "Board":
        if not Path(path).is_file() and not Path(path).is_dir():  # a folder: refused by cls(path)
            raise BoardError(f"リーダーボードがありません: {path} "
                             "(最初の submit で --gold を渡すと作られます)")
        board = cls(path)
        with board._closed_on_error(), board._transaction():  # waits for a board being created now
            board.config
        return board

    # settings and state

    def _meta(self, key: str):
        try:
            row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        except sqlite3.OperationalError as e:
            if "no such table" in str(e):
                return None  # an empty file, or one being created
            raise BoardError(f"{self.path} を読めません ({e})") from e
        except sqlite3.DatabaseError as e:
            raise BoardError(f"{self.path} はリーダーボードのファイルではありません ({e})") from e
        return None if row is None else json.loads(row["value"])

    @property
    def config(self) -> BoardConfig:
        value = self._meta("config")
        if value is None:
            raise BoardError(f"{self.path} にはリーダーボードがありません "
                             "(最初の submit で --gold を渡すと作られます)")
        return BoardConfig(**value)

    @property
    def closed(self) -> dict | None:
        """``{"at": time, "selection": ...}`` once closed, else None."""
        return self._meta("closed")

    def load_gold(self) -> Gold:
        """The board's gold file, refused if it changed since the board was made."""
        config = self.config
        try:
            digest = file_sha256(config.gold_path)
        except OSError as e:
            raise BoardError(f"正解ファイルを読めません: {config.gold_path} ({describe_os_error(e)})") from e
        if digest != config.gold_sha256:
            raise BoardError(f"正解ファイルが作成時から変わっています: {config.gold_path}")
        gold = load_gold(config.gold_path, label_space=config.label_space)
        if config.label_space == "auto" and gold.form == "simple" and gold.label_space == "ene":
            # A board from before the label space was stored: its scores were made
            # with any labels on simple-form gold, and so are the next ones.
            gold = load_gold(config.gold_path, label_space="any")
        return gold

    # submitting

    def submit(self, team: str, submission_path: str | Path, description: str = "", *,
               max_errors: int = 20, now: float | None = None) -> SubmissionRecord:
        """Score a submission and store it. Raises ``InvalidSubmission`` (nothing stored,
        nothing counted), ``RateLimited`` or ``BoardClosed``.

        The file is checked before the team's submission limit, so a team at its limit
        still learns what is wrong with a broken file; a valid file refused for the
        limit is neither stored nor counted, and its score is not shown."""
        team, description = clean_team_name(team), clean_description(description)
        if self.closed is not None:  # fail fast: after close, no file is worth checking
            raise BoardClosed(_CLOSED)
        config = self.config
        report = score_submission(self.load_gold(), submission_path, max_errors=max_errors,
                                  partition=split_function(config.split_seed,
                                                           config.public_fraction))
        digest = file_sha256(submission_path)
        empty = Counts()
        public, private = report.parts.get(PUBLIC, empty), report.parts.get(PRIVATE, empty)
        with self._transaction() as conn:  # the limit, checked and used under one lock
            team = _known_spelling(conn, team)
            submitted_at = time.time() if now is None else now
            self._check_can_submit(conn, team, submitted_at)
            team_id = _team_id(conn, team, submitted_at)
            cur = conn.execute(
                "INSERT INTO submissions (team_id, submitted_at, description, file_name,"
                " file_sha256, public_tp, public_fp, public_fn, private_tp, private_fp,"
                " private_fn, public_f1, private_f1) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (team_id, submitted_at, description, Path(submission_path).name, digest,
                 public.tp, public.fp, public.fn, private.tp, private.fp, private.fn,
                 public.f1, private.f1))
            sub_id = cur.lastrowid
        return replace(self.submission(sub_id), report=report)

    def _check_can_submit(self, conn: sqlite3.Connection, team: str, now: float) -> None:
        if self.closed is not None:
            raise BoardClosed(_CLOSED)
        config = self.config
        if config.max_submissions == 0:
            return
        window = config.window_hours * 3600
        rows = conn.execute(
            "SELECT s.submitted_at FROM submissions s JOIN teams t ON s.team_id = t.id"
            " WHERE t.name = ? AND s.submitted_at > ? ORDER BY s.submitted_at",
            (team, now - window)).fetchall()
        if len(rows) >= config.max_submissions:
            next_time = rows[len(rows) - config.max_submissions]["submitted_at"] + window
            raise RateLimited(
                f"チーム「{team}」は {config.window_hours:g} 時間に {config.max_submissions} 回"
                f"まで提出できます。次に提出できるのは {_format_local(next_time)} 以降です。"
                "提出ファイルに誤りはありませんでしたが、この提出は記録せず、回数にも数えません")

    # reading

    def submission(self, sub_id: int) -> SubmissionRecord:
        rows = self._submission_rows("WHERE s.id = ?", (sub_id,))
        if not rows:
            raise BoardError(f"提出 {sub_id} はありません")
        return rows[0]

    def submissions(self, team: str | None = None) -> list[SubmissionRecord]:
        if team is None:
            return self._submission_rows("", ())
        return self._submission_rows("WHERE t.name = ?", (_known_spelling(self._conn, clean_team_name(team)),))

    def _submission_rows(self, where: str, params: tuple) -> list[SubmissionRecord]:
        rows = self._conn.execute(
            "SELECT s.*, t.name AS team FROM submissions s JOIN teams t ON s.team_id = t.id "
            f"{where} ORDER BY s.submitted_at, s.id", params).fetchall()
        return [_record(row) for row in rows]

    def teams(self) -> list[str]:
        return [r["name"] for r in self._conn.execute("SELECT name FROM teams ORDER BY id")]

    def standings(self, phase: str | None = None) -> Standings:
        """Each team's best submission, ranked: public scores before ``close``, then
        private. ``phase="public"`` shows the public board even after closing."""
        closed = self.closed
        phase = phase or (PRIVATE if closed else PUBLIC)
        if phase == PRIVATE and not closed:
            raise BoardError("private の順位は締め切り (close) の後に出せます")
        if phase not in (PUBLIC, PRIVATE):
            raise ValueError(f"phase は public か private です: {phase!r}")
        selection = closed["selection"] if phase == PRIVATE else "public-best"
        rows = _rank(self.submissions(), phase, selection)
        return Standings(phase, rows, closed["at"] if closed else None,
                         selection if phase == PRIVATE else None)

    # closing

    def close(self, selection: str = "public-best", *, now: float | None = None) -> Standings:
        """Close the board: no more submissions; the private ranking is shown from now on.
        ``selection``: which submission of each team is ranked: its best public one
        ("public-best", as Kaggle does) or its best private one ("private-best")."""
        if selection not in SELECTIONS:
            raise BoardError(f"選び方は {SELECTIONS} のどれかです: {selection!r}")
        with self._transaction() as conn:
            if self.closed is not None:
                raise BoardClosed("リーダーボードは既に締め切られています")
            _set_meta(conn, "closed", {"at": time.time() if now is None else now,
                                       "selection": selection})
        return self.standings()


def _create_tables(conn: sqlite3.Connection) -> None:
    # executescript() would COMMIT the open transaction; run the statements one by one.
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)


def _set_meta(conn: sqlite3.Connection, key: str, value) -> None:
    conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                 (key, json.dumps(value, ensure_ascii=False)))


def _known_spelling(conn: sqlite3.Connection, team: str) -> str:
    """The name under which the team already submitted, if it differs only in case
    ("Team A" and "team a" are one team, with one daily limit); else the name itself."""
    for (name,) in conn.execute("SELECT name FROM teams"):
        if name.casefold() == team.casefold():
            return name
    return team


def _team_id(conn: sqlite3.Connection, team: str, now: float) -> int:
    row = conn.execute("SELECT id FROM teams WHERE name = ?", (team,)).fetchone()
    if row is not None:
        return row["id"]
    return conn.execute("INSERT INTO teams (name, created_at) VALUES (?, ?)",
                        (team, now)).lastrowid


def _record(row: sqlite3.Row) -> SubmissionRecord:
    return SubmissionRecord(
        id=row["id"], team=row["team"], submitted_at=row["submitted_at"],
        description=row["description"], file_name=row["file_name"],
        file_sha256=row["file_sha256"],
        public=Counts(row["public_tp"], row["public_fp"], row["public_fn"]),
        private=Counts(row["private_tp"], row["private_fp"], row["private_fn"]))


def _new_config(gold_path: str | Path, settings: dict) -> BoardConfig:
    gold = load_gold(gold_path, label_space=settings["label_space"])
    settings = {**settings, "label_space": gold.label_space}  # as decided now: every submission the same
    config = BoardConfig(gold_path=str(Path(gold_path).resolve()),
                         gold_sha256=file_sha256(gold_path), **settings)
    _check_split_nonempty(gold, config)
    return config


def _check_split_nonempty(gold: Gold, config: BoardConfig) -> None:
    part = split_function(config.split_seed, config.public_fraction)
    parts = {part(pid) for pid in gold.labels}
    if parts != {PUBLIC, PRIVATE}:
        raise BoardError("public か private のページが 0 件になります。"
                         "ページを増やすか public の割合を変えてください")


def _rank(submissions: list[SubmissionRecord], phase: str, selection: str) -> list[RankRow]:
    """Pick each team's best submission and rank the teams."""
    select_by = PRIVATE if selection == "private-best" else PUBLIC
    best: dict[str, SubmissionRecord] = {}
    entries: dict[str, int] = {}
    for sub in submissions:
        entries[sub.team] = entries.get(sub.team, 0) + 1
        if sub.team not in best or _key(sub, select_by) < _key(best[sub.team], select_by):
            best[sub.team] = sub
    ordered = sorted(best.values(), key=lambda s: _key(s, phase))
    return [RankRow(rank=i, team=s.team, submitted_at=s.submitted_at,
                    description=s.description,
                    score=s.private_f1 if phase == PRIVATE else s.public_f1,
                    public_f1=s.public_f1,
                    private_f1=s.private_f1 if phase == PRIVATE else None,
                    entries=entries[s.team], submission_id=s.id)
            for i, s in enumerate(ordered, 1)]


def _key(sub: SubmissionRecord, part: str) -> tuple:
    score = sub.private_f1 if part == PRIVATE else sub.public_f1
    return _score_key(score, sub.submitted_at, sub.id)
