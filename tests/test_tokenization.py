"""The from-scratch Japanese tokenizer against transformers' BertJapaneseTokenizer."""
import json
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from solutions import data as D
from solutions.data import first_paragraph
from solutions.tokenization import (
    CLS_ID, LEADING_MARGIN, MASK_ID, PAD_ID, SEP_ID, SPECIAL_TOKENS, UNK_ID, Tokenizer, load_vocab,
    mecab_words, mecab_words_fast, train_vocab, truncate, wordpiece,
)

ROOT = Path(__file__).resolve().parents[1]

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()  # silence the per-call "longest_first" warning

# ------------------------------------------------------------ generated texts

NOUNS = ["東京", "大学", "研究", "天気", "猫", "犬", "電車", "図書館", "先生", "学生", "自然言語処理",
         "機械学習", "コンピュータ", "プログラム", "データ", "モデル", "日本語", "文章", "単語", "辞書",
         "京都", "富士山", "桜", "お茶", "ラーメン", "新聞", "映画", "音楽", "友達", "会社", "ワークショップ"]
VERBS = ["行きます", "食べた", "見ている", "書きました", "読む", "学ぶ", "使っている", "作った", "走る",
         "考えます", "教えてくれた", "調べる", "買いたい"]
PARTICLES = ["は", "が", "を", "に", "で", "と", "も", "の", "から", "まで"]
ADJECTIVES = ["新しい", "大きな", "美しい", "難しい", "面白い", "静かな"]
ODD_PIECES = [
    # digits, Latin script, full-width and half-width forms
    "2024年", "3.14", "１２３", "BERT", "Transformer", "GPU", "ＡＢＣ", "Ｈｅｌｌｏ", "ｶﾀｶﾅ", "ﾊﾞｰｼﾞｮﾝ",
    "ｱｲｳｴｵ", "①", "㈱", "㌔", "ﬁ", "ｰ", "https://example.com/a?q=1", "user@example.jp",
    # symbols and emoji
    "（注）", "【速報】", "「引用」", "！？", "〜", "♪", "😀", "👍🏽", "🇯🇵",
    # characters the training texts never contain
    "한국어", "ภาษาไทย", "العربية", "Ελληνικά", "𠮷野家", "龘", "か\u3099", "\u200b", "\ufeff",
    # whitespace of every kind
    " ", "\u3000", "\t", "\n", "\r\n", "\u2028", "\x1c", "\x85", "\xa0",
    # special tokens written in the text, and things that only look like them
    "[MASK]", "[UNK]", "[CLS]", "[SEP]", "[PAD]", "［MASK］", "[mask]", "[[SEP]]", "[MAS[MASK]K]",
]
LONG_WORDS = ["あ" * 150, "a" * 101, "x" * 100, "漢" * 99, "ア" * 120, "1234567890" * 11]
EDGE_TEXTS = ["", " ", "\u3000", " \t\n\u3000 ", "\n\n", "。", "[MASK]", "[CLS][SEP]",
              *LONG_WORDS, "東京" * 400, "。".join(["今日はいい天気です"] * 100),
              "東京\x00都", "\x1b\x1b\x000\x80»"]  # MeCab reads up to a NUL only


def sentence(rng: random.Random, odd: float) -> str:
    parts = []
    for _ in range(rng.randint(1, 4)):
        parts += [rng.choice(NOUNS), rng.choice(PARTICLES)]
        if rng.random() < 0.3:
            parts.append(rng.choice(ADJECTIVES))
        parts += [rng.choice(NOUNS), rng.choice(PARTICLES), rng.choice(VERBS)]
        parts.append(rng.choice(["。", "、", "！", "?", ""]))
    for _ in range(rng.randint(0, 3) if rng.random() < odd else 0):
        parts.insert(rng.randrange(len(parts) + 1), rng.choice(ODD_PIECES + LONG_WORDS[:2]))
    return "".join(parts)


def generated_texts(n: int, seed: int, odd: float = 0.5) -> list[str]:
    rng = random.Random(seed)
    return [sentence(rng, odd) for _ in range(n)]


def transformers_tokenizer(vocab_file):
    return transformers.BertJapaneseTokenizer(
        str(vocab_file), word_tokenizer_type="mecab", mecab_kwargs={"mecab_dic": "unidic_lite"},
        subword_tokenizer_type="wordpiece", do_lower_case=False)


def transformers_encode(hf, texts, pairs=None, max_length=512, padding=False):
    out = hf(texts, pairs, truncation=True, max_length=max_length, padding=padding,
             return_token_type_ids=True)
    return {key: out[key] for key in ("input_ids", "token_type_ids", "attention_mask")}


def without_positions(batch: dict) -> dict:
    return {key: value for key, value in batch.items() if key != "position_ids"}


def assert_same(ours: dict, theirs: dict, texts):
    for key in ("input_ids", "token_type_ids", "attention_mask"):
        for i, (a, b) in enumerate(zip(ours[key], theirs[key])):
            assert a == b, f"{key} differs for text {i}: {texts[i]!r}"
        assert len(ours[key]) == len(theirs[key])


@pytest.fixture(scope="module")
def generated_dir(tmp_path_factory):
    """A small vocabulary trained on plain generated sentences (few odd characters)."""
    vocab = train_vocab(generated_texts(500, seed=1, odd=0.05), vocab_size=400)
    directory = tmp_path_factory.mktemp("generated_vocab")
    Tokenizer(vocab).save(directory)
    return directory


@pytest.fixture(scope="module")
def ours(generated_dir):
    return Tokenizer.from_pretrained(generated_dir)


@pytest.fixture(scope="module")
def theirs(generated_dir):
    return transformers_tokenizer(generated_dir / "vocab.txt")


@pytest.fixture(scope="module")
def sample_texts():
    return generated_texts(1200, seed=2) + EDGE_TEXTS


# ------------------------------------------------------ same ids as transformers

def test_encode_matches_transformers_on_single_texts(ours, theirs, sample_texts):
    assert len(sample_texts) >= 1000
    expected = transformers_encode(theirs, sample_texts, max_length=64, padding="max_length")
    encoded = [ours.encode(t, max_length=64, padding="max_length") for t in sample_texts]
    got = {key: [e[key] for e in encoded] for key in expected}
    assert_same(got, expected, sample_texts)
    assert all(e["position_ids"] == list(range(64)) for e in encoded)


def test_encode_matches_transformers_on_pairs(ours, theirs, sample_texts):
    pairs = sample_texts[::-1]
    expected = transformers_encode(theirs, sample_texts, pairs, max_length=48)
    encoded = [ours.encode(a, b, max_length=48) for a, b in zip(sample_texts, pairs)]
    got = {key: [e[key] for e in encoded] for key in expected}
    assert_same(got, expected, list(zip(sample_texts, pairs)))


@pytest.fixture(scope="module")
def batch_cases(theirs, sample_texts):
    """(texts, pairs, settings, what transformers gives), computed once for both worker counts."""
    pairs = sample_texts[1:] + sample_texts[:1]
    cases = [(sample_texts, pairs, {"max_length": 40}), (sample_texts, pairs, {"max_length": 512}),
             (sample_texts, None, {"max_length": 128, "padding": "max_length"})]
    return [(texts, pairs, kwargs,
             transformers_encode(theirs, texts, pairs, **{"padding": "longest", **kwargs}))
            for texts, pairs, kwargs in cases]


@pytest.mark.parametrize("workers", [1, 2])
def test_encode_batch_matches_transformers(ours, batch_cases, workers):
    for texts, pairs, kwargs, expected in batch_cases:
        got = ours.encode_batch(texts, pairs, workers=workers, **kwargs)
        assert_same(got, expected, texts if pairs is None else list(zip(texts, pairs)))


def test_sample_texts_reach_the_edge_cases(ours, sample_texts):
    tokens = [token for text in sample_texts for token in ours.tokenize(text)]
    assert "[UNK]" in tokens and "[MASK]" in tokens
    assert any(t.startswith("##") for t in tokens)
    lengths = [len(ours.encode(t, max_length=10_000)["input_ids"]) for t in sample_texts]
    assert max(lengths) > 512 and min(lengths) == 2


def test_fast_words_are_mecab_words(sample_texts):
    for text in sample_texts:
        assert mecab_words_fast(text) == mecab_words(text), repr(text)


# ---------------------------------------------------------------- livedoor

def read_livedoor(path, n_articles: int) -> list[tuple[str, str]]:
    """(title, first paragraph) of `n_articles` articles spread over the categories."""
    articles = [(r.title, first_paragraph(r.text)) for r in D.read_livedoor(path)]
    return articles[::max(1, len(articles) // n_articles)][:n_articles]


@pytest.fixture(scope="module")
def livedoor(shared_data):
    path = shared_data / "livedoor" / "ldcc-20140209-train80.tar.gz"
    if not path.exists():
        pytest.skip(f"{path} がありません")
    return read_livedoor(path, 1000)


@pytest.mark.slow
def test_livedoor_ids_match_transformers(livedoor, tmp_path):
    titles = [title for title, _ in livedoor]
    paragraphs = [paragraph for _, paragraph in livedoor]
    texts = [title + "\n" + paragraph for title, paragraph in livedoor]
    Tokenizer(train_vocab(texts, vocab_size=8000)).save(tmp_path)
    ours, theirs = Tokenizer.from_pretrained(tmp_path), transformers_tokenizer(tmp_path / "vocab.txt")

    expected = transformers_encode(theirs, texts, max_length=128, padding="longest")
    assert_same(ours.encode_batch(texts, max_length=128), expected, texts)
    encoded = [ours.encode(t, max_length=128) for t in texts[:300]]
    single = transformers_encode(theirs, texts[:300], max_length=128)
    assert_same({k: [e[k] for e in encoded] for k in single}, single, texts)

    expected = transformers_encode(theirs, titles, paragraphs, max_length=64, padding="max_length")
    got = ours.encode_batch(titles, paragraphs, max_length=64, padding="max_length", workers=2)
    assert_same(got, expected, titles)


@pytest.mark.slow
def test_benchmark_runs_and_reports_json(shared_data):
    if not (shared_data / "livedoor" / "ldcc-20140209-train80.tar.gz").exists():
        pytest.skip("livedoor コーパスがありません")
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "tokenizer_speed.py"), "--limit", "40", "--max-length", "64",
         "--repeat", "1", "--data", str(shared_data)],
        capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["texts"] == 40 and report["ids_equal"] is True
    for name in ("transformers", "ours_1_worker", "ours_2_workers", "ours_1_worker_whole_texts"):
        assert report[name]["texts_per_s"] > 0 and report[name]["tokens_per_s"] > 0


# ------------------------------------------------------ WordPiece by hand

SMALL_VOCAB = {token: i for i, token in enumerate(SPECIAL_TOKENS + [
    "東京", "東", "##京", "##都", "大学", "##大学", "で", "学ぶ", "un", "##aff", "##able",
    "a", "##a", "abc", "##bcd", "!", "ワーク", "##ショップ",
])}


@pytest.mark.parametrize("word, pieces", [
    ("東京", ["東京"]),                      # a whole word in the vocabulary
    ("東京都", ["東京", "##都"]),            # the longest prefix, then "##" pieces
    ("東京大学", ["東京", "##大学"]),
    ("unaffable", ["un", "##aff", "##able"]),
    ("京都", ["[UNK]"]),                     # "京" exists only as a continuation "##京"
    ("東京x", ["[UNK]"]),                    # one unmatched part: the whole word is [UNK]
    ("abcd", ["[UNK]"]),                     # greedy: "abc" first, then "##d" fails
    ("a" * 3, ["a", "##a", "##a"]),
])
def test_wordpiece_by_hand(word, pieces):
    assert wordpiece(word, SMALL_VOCAB) == pieces


def test_wordpiece_gives_up_on_words_over_100_characters():
    assert wordpiece("a" * 100, SMALL_VOCAB) == ["a"] + ["##a"] * 99
    assert wordpiece("a" * 101, SMALL_VOCAB) == ["[UNK]"]
    assert wordpiece("東京", SMALL_VOCAB, max_chars=1) == ["[UNK]"]


def test_tokenize_on_a_small_vocabulary():
    tokenizer = Tokenizer(SMALL_VOCAB)
    assert tokenizer.tokenize("東京大学で[MASK]を学ぶ！") == [
        "東京", "大学", "で", "[MASK]", "[UNK]", "学ぶ", "!"]
    assert tokenizer.tokenize(" \u3000\n") == []
    assert mecab_words("東京都でワークショップ") == ["東京", "都", "で", "ワークショップ"]
    ids = tokenizer.encode("東京都でワークショップ")["input_ids"]
    assert tokenizer.convert_ids_to_tokens(ids) == [
        "[CLS]", "東京", "[UNK]", "で", "ワーク", "##ショップ", "[SEP]"]  # MeCab's "都" is a word
    assert tokenizer.decode(ids) == "東京でワークショップ"
    assert tokenizer.decode(ids, skip_special_tokens=False) == "[CLS]東京[UNK]でワークショップ[SEP]"


# ------------------------------------------------ special tokens and layout

def test_special_token_layout():
    assert SPECIAL_TOKENS == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert (PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID) == (0, 1, 2, 3, 4)
    tokenizer = Tokenizer(SMALL_VOCAB)
    assert (tokenizer.pad_id, tokenizer.unk_id, tokenizer.cls_id, tokenizer.sep_id,
            tokenizer.mask_id) == (0, 1, 2, 3, 4)
    assert tokenizer.id_to_token[:5] == SPECIAL_TOKENS
    assert tokenizer.vocab_size == len(SMALL_VOCAB)
    assert tokenizer.encode("")["input_ids"] == [CLS_ID, SEP_ID]
    pair = tokenizer.encode("", "", max_length=5, padding="max_length")
    assert pair == {"input_ids": [2, 3, 3, 0, 0], "token_type_ids": [0, 0, 1, 0, 0],
                    "attention_mask": [1, 1, 1, 0, 0], "position_ids": [0, 1, 2, 3, 4]}


def test_the_same_texts_give_the_same_vocabulary_every_time():
    """The tokenizers trainer alone numbers its "##" pieces in hash-map order, so the
    merges chosen among equally frequent pairs, and the ids, change from run to run
    (huggingface/tokenizers#1794): pre-training with one seed gave different models."""
    texts = [r.title + "\n" + r.text for r in D.make_demo_corpus(n_pages=300, seed=0)]
    first = train_vocab(texts, vocab_size=3000)
    assert all(train_vocab(texts, vocab_size=3000) == first for _ in range(4))  # ids included
    assert len(first) == 3000 and list(first)[:5] == SPECIAL_TOKENS and list(first.values()) == list(range(3000))
    merged = [t for t in first if len(t.removeprefix("##")) >= 3]
    assert len(merged) > 100  # merges were made, so ties among them had to be broken
    words = {w for text in texts for w in mecab_words(text)}
    inside = {"##" + c for w in words for c in w[1:]}
    assert inside <= set(first)  # every character can continue a word, as before


def test_truncation_takes_from_the_longer_text_first():
    assert truncate([1] * 10, [2] * 4, 5) == ([1] * 5, [2] * 4)
    assert truncate([1] * 10, [2] * 4, 8) == ([1] * 3, [2] * 3)  # 6 from the first, then 1 + 1
    assert truncate([1] * 4, [2] * 4, 3) == ([1] * 3, [2] * 2)   # the odd one from the second
    assert truncate([1] * 4, None, 3) == ([1], None)


def test_encode_batch_tensors_and_padding(ours):
    texts = ["東京の大学で学ぶ", "猫"]
    batch = ours.encode_batch(texts, return_tensors="pt")
    assert batch["input_ids"].dtype == torch.long
    assert batch["input_ids"].shape == batch["attention_mask"].shape == batch["position_ids"].shape
    assert batch["attention_mask"].sum(1).tolist() == [len(ours.encode(t)["input_ids"]) for t in texts]
    unpadded = ours.encode_batch(texts, padding=False)
    assert unpadded["input_ids"] == [ours.encode(t)["input_ids"] for t in texts]
    with pytest.raises(ValueError, match="padding"):
        ours.encode_batch(texts, padding=False, return_tensors="pt")
    with pytest.raises(ValueError, match="padding"):
        ours.encode("猫", padding="longest")
    with pytest.raises(ValueError, match="pairs"):
        ours.encode_batch(texts, ["一つだけ"])
    assert ours.encode_batch([])["input_ids"] == []


# ------------------------------------------------------------ vocab files

def write_vocab(path, tokens):
    path.write_text("".join(t + "\n" for t in tokens), encoding="utf-8")
    return path


def test_load_vocab_reads_line_numbers_as_ids(tmp_path):
    path = write_vocab(tmp_path / "vocab.txt", SPECIAL_TOKENS + ["東京", "##都"])
    assert load_vocab(path) == {t: i for i, t in enumerate(SPECIAL_TOKENS + ["東京", "##都"])}


def test_load_vocab_names_the_file_and_the_missing_token(tmp_path):
    path = write_vocab(tmp_path / "no_mask.txt", SPECIAL_TOKENS[:4] + ["東京"])
    with pytest.raises(ValueError, match=r"no_mask\.txt.*\[MASK\]"):
        load_vocab(path)
    path = write_vocab(tmp_path / "swapped.txt", ["[PAD]", "[UNK]", "[SEP]", "[CLS]", "[MASK]"])
    with pytest.raises(ValueError, match=r"swapped\.txt.*\[CLS\].*ID"):
        load_vocab(path)
    path = write_vocab(tmp_path / "twice.txt", SPECIAL_TOKENS + ["東京", "東京"])
    with pytest.raises(ValueError, match=r"twice\.txt.*東京"):
        load_vocab(path)
    with pytest.raises(ValueError, match="連番"):
        Tokenizer({**{t: i for i, t in enumerate(SPECIAL_TOKENS)}, "東京": 9})


def test_save_then_open_with_autotokenizer(ours, tmp_path):
    ours.save(tmp_path)
    hf = transformers.AutoTokenizer.from_pretrained(str(tmp_path))
    assert type(hf).__name__ == "BertJapaneseTokenizer"
    assert hf.word_tokenizer_type == "mecab" and hf.subword_tokenizer_type == "wordpiece"
    assert hf.mecab_kwargs == {"mecab_dic": "unidic_lite"} and hf.do_lower_case is False
    assert hf.get_vocab() == ours.vocab
    texts = generated_texts(50, seed=3)
    assert_same(ours.encode_batch(texts), transformers_encode(hf, texts, padding="longest"), texts)
    assert Tokenizer.from_pretrained(tmp_path).id_to_token == ours.id_to_token
    # token_type_ids without asking (transformers 5 leaves them out unless the config names them)
    plain = hf(texts[0], texts[1], truncation=True, max_length=64)
    assert plain["token_type_ids"] == ours.encode(texts[0], texts[1], max_length=64)["token_type_ids"]


@pytest.mark.parametrize("setting", [{"do_lower_case": True}, {"word_tokenizer_type": "basic"},
                                     {"mecab_kwargs": {"mecab_dic": "ipadic"}}, {"truncation_side": "left"},
                                     {"do_word_tokenize": False}, {"split_special_tokens": True},
                                     {"tokenizer_class": "BertTokenizer"}])
def test_from_pretrained_refuses_other_settings(tmp_path, setting):
    """Each of these makes transformers' ids differ from ours on the same text."""
    ours = Tokenizer({t: i for i, t in enumerate(
        SPECIAL_TOKENS + ["東京", "に", "行く", "猫", "が", "走る", "[", "]", "MASK", "。", "BERT", "bert"])})
    ours.save(tmp_path)
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({**config, **setting}))
    (key, value), = setting.items()
    named = next(iter(value)) if isinstance(value, dict) else key  # mecab_kwargs: its mecab_dic
    with pytest.raises(ValueError, match="tokenizer_config.json.*" + re.escape(named)):
        Tokenizer.from_pretrained(tmp_path)
    if "mecab_kwargs" in setting:  # transformers would need the ipadic package
        return
    hf = transformers.AutoTokenizer.from_pretrained(str(tmp_path))
    text, pair = "BERTで東京に行く。[MASK]", "猫が走る。猫が走る。"
    assert any(hf(text, pair, truncation=True, max_length=n)["input_ids"] != ours.encode(text, pair, max_length=n)["input_ids"]
               for n in (8, 32))


@pytest.mark.parametrize("text,message", [("[1]", r"JSON のオブジェクト \({...}\) ではありません \(list\)"),
                                          ("{bad", r"1: JSON として読めません \(2 文字目: Expecting property name"),
                                          ('{"tokenizer_class": "BertJapaneseTokenizer", "mecab_kwargs": "unidic_lite"}', r"mecab_kwargs='str'")])
def test_a_broken_tokenizer_config_is_named(ours, tmp_path, text, message):
    ours.save(tmp_path)
    (tmp_path / "tokenizer_config.json").write_text(text)
    with pytest.raises(ValueError, match=r"tokenizer_config\.json:.*" + message):
        Tokenizer.from_pretrained(tmp_path)


def test_a_tokenizer_class_named_in_config_json_is_read_as_transformers_reads_it(ours, tmp_path):
    """Older models (cl-tohoku/bert-base-japanese-v2) name the class in config.json only."""
    ours.save(tmp_path)
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    del config["tokenizer_class"]
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="tokenizer_class=None"):
        Tokenizer.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "tokenizer_class": "BertTokenizer"}))
    with pytest.raises(ValueError, match=r"config\.json: tokenizer_class='BertTokenizer'"):  # the file it came from
        Tokenizer.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "tokenizer_class": "BertJapaneseTokenizer"}))
    hf = transformers.AutoTokenizer.from_pretrained(str(tmp_path))
    assert type(hf).__name__ == "BertJapaneseTokenizer"
    texts = generated_texts(20, seed=4)
    loaded = Tokenizer.from_pretrained(tmp_path)
    assert [loaded.encode(t)["input_ids"] for t in texts] == [hf(t)["input_ids"] for t in texts]


def test_a_vocab_that_is_not_utf8_names_the_line(tmp_path):
    path = write_vocab(tmp_path / "vocab.txt", SPECIAL_TOKENS + ["東京", "猫"])
    path.write_bytes(path.read_bytes().replace("猫".encode(), b"\xff"))
    with pytest.raises(ValueError, match=r"vocab\.txt: 7 行目が UTF-8 として読めません"):
        load_vocab(path)
    path.write_bytes("".join(t + "\r\n" for t in SPECIAL_TOKENS + ["東京", "猫"]).encode())
    assert list(load_vocab(path)) == SPECIAL_TOKENS + ["東京", "猫"]  # CRLF lines, as open() reads them


def test_from_pretrained_refuses_a_folder_without_tokenizer_config(ours, tmp_path):
    """transformers would open its vocab.txt as an English BertTokenizer."""
    ours.save(tmp_path)
    (tmp_path / "tokenizer_config.json").unlink()
    with pytest.raises(ValueError, match="tokenizer_config.json がありません"):
        Tokenizer.from_pretrained(tmp_path)


@pytest.mark.slow
def test_leading_ids_are_the_first_ids_of_whole_livedoor_articles(shared_data):
    """Tokenizing only the start of a long text (Tokenizer.leading_ids) gives the
    ids of the whole text, on every article, at three lengths."""
    path = shared_data / "livedoor" / "ldcc-20140209-train80.tar.gz"
    if not path.exists():
        pytest.skip(f"{path} がありません")
    texts = [r.text for r in D.read_livedoor(path)]
    ours = Tokenizer(train_vocab(texts[::4], vocab_size=16000))
    whole = [ours.fast_ids(text) for text in texts]
    for n in (62, 254, 510):
        cut = sum(len(text) > 2 * n and len(ids) > n + LEADING_MARGIN for text, ids in zip(texts, whole))
        assert cut > len(texts) // 4, "most articles must be long enough to be cut"
        for text, ids in zip(texts, whole):
            assert ours.leading_ids(text, n) == ids[:n], (n, text[:80])


def test_leading_ids_do_not_cut_inside_a_run_of_full_stops():
    """MeCab makes the last 25 「。」 of a run one word ("。" + 24 × "##。" here). A text
    cut inside the run would end in that word where the whole text has single 「。」."""
    tok = Tokenizer({t: i for i, t in enumerate(SPECIAL_TOKENS + ["。", "##。", "東京", "に", "行く", "、"])})
    texts = ["。" * 40 + "東京に行く" * 20, "東京に行く、" * 12 + "。" * 80 + "東京に行く" * 20,
             ("東京に行く" + "。" * 30) * 6]
    for text in texts:
        whole = tok.fast_ids(text)
        for n in range(1, 130):
            assert tok.leading_ids(text, n) == whole[:n], (n, text[:20])
    assert [tok.encode_batch([t], max_length=16)["input_ids"][0] for t in texts] == \
        [tok.encode(t, max_length=16)["input_ids"] for t in texts]


# ------------------------------------------------------------ properties

FRAGMENTS = NOUNS[:10] + PARTICLES + VERBS[:4] + ODD_PIECES + ["あ" * 101, "。"]
texts_strategy = st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=4), max_size=12).map("".join)


@settings(max_examples=150, deadline=None)
@given(text=texts_strategy, pair=st.none() | texts_strategy, max_length=st.integers(3, 40))
def test_property_layout_and_padding(ours, theirs, text, pair, max_length):
    padded = ours.encode(text, pair, max_length=max_length, padding="max_length")
    plain = ours.encode(text, pair, max_length=max_length)
    n = sum(padded["attention_mask"])
    # padding only appends: the real tokens are the unpadded encoding
    assert n == len(plain["input_ids"]) <= max_length
    assert {k: v[:n] for k, v in without_positions(padded).items()} == without_positions(plain)
    assert padded["input_ids"][n:] == [PAD_ID] * (max_length - n)
    assert padded["position_ids"] == list(range(max_length))
    # [CLS] A [SEP] (B [SEP]): segment 0 up to the first [SEP], then 1
    ids, types = plain["input_ids"], plain["token_type_ids"]
    assert ids[0] == CLS_ID and ids[-1] == SEP_ID
    n_first = types.count(0)
    assert types == [0] * n_first + [1] * (n - n_first) and ids[n_first - 1] == SEP_ID
    assert (n_first < n) == (pair is not None)
    # and transformers agrees, with the fast path too
    expected = transformers_encode(theirs, [text], None if pair is None else [pair], max_length)
    assert_same({k: [v] for k, v in plain.items()}, expected, [(text, pair)])
    fast = ours.encode_batch([text], None if pair is None else [pair], max_length=max_length)
    assert without_positions(fast) == {k: [v] for k, v in without_positions(plain).items()}


@settings(max_examples=300, deadline=None)
@given(n_first=st.integers(0, 30), n_second=st.none() | st.integers(0, 30), n_remove=st.integers(1, 70))
def test_property_truncate_is_transformers_longest_first(theirs, n_first, n_second, n_remove):
    first = list(range(100, 100 + n_first))
    second = None if n_second is None else list(range(200, 200 + n_second))
    a, b, _ = theirs.truncate_sequences(list(first), None if second is None else list(second),
                                        num_tokens_to_remove=n_remove, truncation_strategy="longest_first")
    assert truncate(first, second, n_remove) == (a, b)


@settings(max_examples=200, deadline=None)
@given(sentences=st.lists(st.sampled_from(generated_texts(60, seed=9, odd=0.3) + EDGE_TEXTS[:9]), min_size=1,
                          max_size=12),
       separators=st.lists(st.sampled_from(["\n", "。", " ", "\u3000", "、", ""]) | st.integers(2, 60).map("。".__mul__),
                           min_size=12, max_size=12),
       n_tokens=st.integers(1, 60))
def test_property_leading_ids_read_only_the_start(ours, sentences, separators, n_tokens):
    """Runs of 「。」 included: MeCab makes the last 25 of a run one word, so a text cut
    inside a run would end in a word the whole text does not have."""
    text = "".join(s + sep for s, sep in zip(sentences, separators))
    assert ours.leading_ids(text, n_tokens) == ours.fast_ids(text)[:n_tokens]
    assert ours.leading_ids(text, None) == ours.fast_ids(text)
