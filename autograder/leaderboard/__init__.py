"""The workshop leaderboard: the SHINRA scorer, submission checks and a SQLite board.

    from autograder.leaderboard import score_files
    report = score_files("gold.jsonl", "submission.jsonl")
    print(f"{report.f1:.4f}")

The command line (``bert-workshop leaderboard ...``) is in ``autograder.leaderboard.cli``.
"""
from autograder.leaderboard.board import (
    Board,
    BoardClosed,
    BoardError,
    RateLimited,
    split_function,
)
from autograder.leaderboard.scorer import (
    Counts,
    Gold,
    InvalidGold,
    InvalidInput,
    InvalidSubmission,
    ScoreReport,
    SubmissionError,
    format_errors,
    load_gold,
    per_label_csv,
    score_files,
    score_submission,
)

__all__ = [
    "Board", "BoardClosed", "BoardError", "RateLimited", "split_function",
    "Counts", "Gold", "InvalidGold", "InvalidInput", "InvalidSubmission", "ScoreReport",
    "SubmissionError", "format_errors", "load_gold", "per_label_csv", "score_files",
    "score_submission",
]
