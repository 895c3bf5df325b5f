"""The livedoor news corpus: archive or extracted folder -> Records; cached download."""
import io
import tarfile
from collections import Counter

import pytest

from solutions.data import DataError, DownloadError, Record, download_livedoor, livedoor_path, read_livedoor
from solutions.data.livedoor import file_sha256

ARCHIVE_NAME = "livedoor/ldcc-20140209-train80.tar.gz"

# A tiny corpus in the official layout, written here (our own text).
FILES = {
    "text/README.txt": "このフォルダについての説明\n",
    "text/CHANGES.txt": "変更履歴\n",
    "text/kaden-channel/LICENSE.txt": "ライセンス\n",
    "text/kaden-channel/kaden-channel-20.txt":
        "http://example.com/20\n2012-01-02T10:00:00+0900\n新しい掃除機を試す\n一行目の本文。\n\n二行目の本文。\n",
    "text/kaden-channel/kaden-channel-3.txt":
        "http://example.com/3\n2012-01-01T09:00:00+0900\n冷蔵庫の選び方\n本文はここから。\n",
    "text/smax/smax-7.txt": "http://example.com/7\n2012-02-01T09:00:00+0900\n新機種の発表\n発表の本文。\n",
}
EXPECTED = [
    Record("kaden-channel-3", "冷蔵庫の選び方", "本文はここから。", ["kaden-channel"]),
    Record("kaden-channel-20", "新しい掃除機を試す", "一行目の本文。\n\n二行目の本文。", ["kaden-channel"]),
    Record("smax-7", "新機種の発表", "発表の本文。", ["smax"]),
]


def make_archive(path, files):
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode("utf-8")
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def make_folder(root, files):
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return root


def test_archive_folder_and_text_folder_read_the_same(tmp_path):
    archive = make_archive(tmp_path / "ldcc.tar.gz", FILES)
    folder = make_folder(tmp_path / "extracted", FILES)
    assert read_livedoor(archive) == EXPECTED
    assert read_livedoor(folder) == EXPECTED
    assert read_livedoor(folder / "text") == EXPECTED


def test_article_without_body_names_the_file(tmp_path):
    files = dict(FILES)
    files["text/smax/smax-8.txt"] = "http://example.com/8\n2012-02-01T09:00:00+0900\nタイトルだけ\n"
    with pytest.raises(DataError) as info:
        read_livedoor(make_archive(tmp_path / "ldcc.tar.gz", files))
    assert "smax-8.txt" in str(info.value) and info.value.field == "text"


def test_missing_or_empty_source(tmp_path):
    with pytest.raises(DataError, match="見つかりません"):
        read_livedoor(tmp_path / "nothing.tar.gz")
    with pytest.raises(DataError, match="1 つもありません"):
        read_livedoor(make_folder(tmp_path / "empty", {"text/README.txt": "説明\n"}))
    (tmp_path / "broken.tar.gz").write_bytes(b"not a tar file")
    with pytest.raises(DataError, match="tar"):
        read_livedoor(tmp_path / "broken.tar.gz")


def test_download_copies_once_into_the_cache(tmp_path):
    source = make_archive(tmp_path / "ldcc-20140209.tar.gz", FILES)
    url = source.as_uri()
    cached = download_livedoor(tmp_path / "cache", url=url, sha256=file_sha256(source))
    assert cached == tmp_path / "cache" / "ldcc-20140209.tar.gz"
    assert cached.read_bytes() == source.read_bytes()
    source.unlink()  # the second call must not need the source
    assert download_livedoor(tmp_path / "cache", url=url) == cached
    assert read_livedoor(livedoor_path(url, tmp_path / "cache")) == EXPECTED


def test_download_checks_the_checksum(tmp_path):
    source = make_archive(tmp_path / "ldcc-20140209.tar.gz", FILES)
    with pytest.raises(DownloadError, match="チェックサム"):
        download_livedoor(tmp_path / "cache", url=source.as_uri(), sha256="0" * 64)
    assert list((tmp_path / "cache").iterdir()) == []


def test_download_offline_explains_what_to_do(tmp_path):
    with pytest.raises(DownloadError, match="ダウンロードできませんでした"):
        download_livedoor(tmp_path / "cache", url="http://127.0.0.1:9/ldcc-20140209.tar.gz")
    assert list((tmp_path / "cache").iterdir()) == []


def test_local_paths_pass_through(tmp_path):
    assert livedoor_path(tmp_path / "x.tar.gz", tmp_path / "cache") == tmp_path / "x.tar.gz"


@pytest.fixture(scope="module")
def archive(shared_data):
    path = shared_data / ARCHIVE_NAME
    if not path.exists():
        pytest.skip(f"{path} がないため、実データのテストを飛ばします")
    return path


@pytest.fixture(scope="module")
def real_records(archive):
    return read_livedoor(archive)


def test_real_archive(real_records):
    assert len(real_records) == 5857
    counts = Counter(r.labels[0] for r in real_records)
    assert sorted(counts) == ["dokujo-tsushin", "it-life-hack", "kaden-channel", "livedoor-homme", "movie-enter",
                              "peachy", "smax", "sports-watch", "topic-news"]
    assert len({r.page_id for r in real_records}) == 5857
    for r in real_records:
        assert r.page_id.startswith(r.labels[0] + "-") and r.page_id.rsplit("-", 1)[1].isdigit()
        assert r.title.strip() and r.text.strip()
        assert not r.title.startswith("http") and not r.text.startswith("http")


def test_real_archive_extracted(archive, real_records, tmp_path):
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path, filter="data")
    assert read_livedoor(tmp_path) == real_records


def test_read_accepts_a_url(tmp_path):
    source = make_archive(tmp_path / "ldcc-20140209.tar.gz", FILES)
    assert read_livedoor(source.as_uri(), cache_dir=tmp_path / "cache") == EXPECTED
    assert (tmp_path / "cache" / "ldcc-20140209.tar.gz").exists()
