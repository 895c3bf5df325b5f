"""Data layer: every source (demo corpus, livedoor, SHINRA 2022) as ``Record``s.

One common form, JSONL with one page a line::

    {"page_id": "123", "title": "…", "text": "…", "labels": ["1.5.1.1"]}
"""
from .demo import DEMO_CATEGORIES, make_demo_corpus
from .livedoor import (
    DEFAULT_CACHE_DIR,
    LIVEDOOR_SHA256,
    LIVEDOOR_URL,
    DownloadError,
    download_livedoor,
    livedoor_path,
    first_paragraph,
    read_livedoor,
)
from .records import (
    DataError,
    Record,
    atomic_writer,
    count_nonblank_lines,
    describe_os_error,
    iter_records_or_errors,
    label_set,
    read_jsonl,
    read_records_checked,
    split_train_dev,
    write_json_lines,
    write_jsonl,
)
from .shinra import (
    count_input_pages,
    iter_cirrus_texts,
    read_shinra,
    read_shinra_annotations,
    read_shinra_inputs,
    submission_key,
    write_cirrus_dump,
    write_shinra_inputs,
    write_shinra_submission,
    write_shinra_training_file,
)

__all__ = [
    "DEMO_CATEGORIES", "make_demo_corpus",
    "LIVEDOOR_SHA256", "LIVEDOOR_URL", "DEFAULT_CACHE_DIR", "DownloadError", "download_livedoor",
    "first_paragraph", "livedoor_path", "read_livedoor",
    "DataError", "Record", "atomic_writer", "count_nonblank_lines", "describe_os_error",
    "iter_records_or_errors", "label_set", "read_jsonl",
    "read_records_checked", "split_train_dev", "write_json_lines", "write_jsonl",
    "count_input_pages", "iter_cirrus_texts", "read_shinra", "read_shinra_annotations",
    "read_shinra_inputs", "submission_key", "write_cirrus_dump", "write_shinra_inputs",
    "write_shinra_submission", "write_shinra_training_file",
]
