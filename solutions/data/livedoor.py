"""The livedoor news corpus (ldcc-20140209): nine news sites, one article a file.

Layout: ``text/<category>/<category>-<id>.txt`` with line 1 the URL, line 2 the
date, line 3 the title and the body from line 4 (plus ``LICENSE.txt`` files,
``README.txt`` and ``CHANGES.txt``, which are skipped). Licence CC BY-ND 2.1 JP:
the corpus is downloaded from its publisher, never copied into this repository.
"""
from __future__ import annotations

import hashlib
import os
import re
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path, PurePosixPath
from typing import Iterator

from .records import DataError, Record

LIVEDOOR_URL = "https://www.rondhuit.com/download/ldcc-20140209.tar.gz"
LIVEDOOR_SHA256 = None  # not known here: the download is checked only when this is set
DEFAULT_CACHE_DIR = Path.home() / ".cache" / "bert-workshop"
ARTICLE_NAME = re.compile(r"(?P<category>[a-z][a-z-]*)-(?P<number>\d+)\.txt")


class DownloadError(OSError):
    """A download that failed (offline, wrong URL, or a checksum mismatch)."""


# ---------------------------------------------------------------- reading


def read_livedoor(source, *, cache_dir=DEFAULT_CACHE_DIR) -> list[Record]:
    """All articles of a livedoor archive (``.tar.gz``) or extracted folder.

    ``source`` is the archive, a folder that holds ``text/`` (or is it), or
    the archive's URL (downloaded once into ``cache_dir``). Each article
    becomes ``Record(page_id=<file stem>, title, text=body, labels=[category])``,
    sorted by category then article number.
    """
    source = livedoor_path(source, cache_dir)
    if source.is_dir():
        files = _iter_folder_articles(source)
    elif source.is_file():
        files = _iter_archive_articles(source)
    else:
        raise DataError(
            "livedoor コーパスが見つかりません（.tar.gz か展開したフォルダを指定してください）", path=source)
    records = [parse_article(name, data, where) for name, data, where in files]
    if not records:
        raise DataError("livedoor の記事が 1 つもありません（text/<カテゴリ>/<カテゴリ>-<番号>.txt）", path=source)
    return sorted(records, key=_article_order)


def first_paragraph(text: str) -> str:
    """The lines before the first blank line of an article's body."""
    return text.split("\n\n", 1)[0]


def _article_order(record: Record) -> tuple[str, int]:
    """Sort key: category, then article number."""
    return record.labels[0], int(record.page_id.rsplit("-", 1)[1])


def is_article_path(path: PurePosixPath) -> bool:
    """True for ``.../<category>/<category>-<number>.txt`` (not LICENSE/README/CHANGES)."""
    match = ARTICLE_NAME.fullmatch(path.name)
    return bool(match) and match["category"] == path.parent.name


def _iter_archive_articles(archive: Path) -> Iterator[tuple[PurePosixPath, bytes, str]]:
    """``(path, bytes, where)`` of each article file inside a tar archive."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                path = PurePosixPath(member.name)
                if member.isfile() and is_article_path(path):
                    yield path, tar.extractfile(member).read(), f"{archive}!{member.name}"
    except (tarfile.TarError, EOFError) as e:
        raise DataError(f"tar アーカイブとして読めません（{e}）", path=archive) from None


def _iter_folder_articles(folder: Path) -> Iterator[tuple[PurePosixPath, bytes, str]]:
    """``(path, bytes, where)`` of each article file under an extracted folder."""
    root = folder / "text" if (folder / "text").is_dir() else folder
    for file in sorted(root.glob("*/*.txt")):
        path = PurePosixPath(file.relative_to(root).as_posix())
        if is_article_path(path):
            yield path, file.read_bytes(), str(file)


def parse_article(path: PurePosixPath, data: bytes, where: str) -> Record:
    """One article file -> ``Record`` (line 3 title, body from line 4)."""
    try:
        lines = data.decode("utf-8").removeprefix("\ufeff").splitlines()
    except UnicodeDecodeError:
        raise DataError("UTF-8 として読めません", path=where) from None
    if len(lines) < 3 or not lines[2].strip():
        raise DataError("3 行目にタイトルがありません", path=where, line=3, field="title")
    body = "\n".join(lines[3:]).strip()
    if not body:
        raise DataError("4 行目以降に本文がありません", path=where, line=4, field="text")
    return Record(page_id=path.stem, title=lines[2].strip(), text=body, labels=[path.parent.name])


# ---------------------------------------------------------------- downloading


def livedoor_path(source, cache_dir) -> Path:
    """A local path for ``source``: a URL is downloaded (once) into ``cache_dir``."""
    if urllib.parse.urlparse(str(source)).scheme in ("http", "https", "file"):
        return download_livedoor(cache_dir, url=str(source))
    return Path(source)


def download_livedoor(cache_dir, *, url=LIVEDOOR_URL, sha256=LIVEDOOR_SHA256) -> Path:
    """Download the livedoor archive into ``cache_dir`` unless it is already there.

    The file is checked against ``sha256`` when one is known, and appears in
    the cache only once complete. Offline, a ``DownloadError`` explains how
    to fetch the archive by hand.
    """
    target = Path(cache_dir) / PurePosixPath(urllib.parse.urlparse(url).path).name
    if target.is_file() and (sha256 is None or file_sha256(target) == sha256):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            digest = _copy_url(url, f)
        if sha256 is not None and digest != sha256:
            raise DownloadError(f"{url}: チェックサム (SHA-256) が一致しません（期待 {sha256}、実際 {digest}）")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return target


def _copy_url(url: str, out) -> str:
    """Copy the body of ``url`` into the file ``out``; return its SHA-256 (hex)."""
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
    except (urllib.error.URLError, OSError) as e:
        raise DownloadError(
            f"{url} をダウンロードできませんでした（{getattr(e, 'reason', e)}）。"
            "オフラインの場合は、ネットにつながる環境で ldcc-20140209.tar.gz を入手し、"
            "そのファイルか展開したフォルダのパスを指定してください。"
        ) from None
    return digest.hexdigest()


def file_sha256(path) -> str:
    """SHA-256 (hex) of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
