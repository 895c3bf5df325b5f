"""The Japanese BERT tokenizer (MeCab + WordPiece), written from scratch.

It gives the same ids as transformers' ``BertJapaneseTokenizer`` configured like
tohoku-nlp/bert-base-japanese-v3 (MeCab with unidic-lite, WordPiece, no lower-casing).
A text becomes ids in five steps:

1. special tokens written in the text ("[MASK]") are kept as they are;
2. the rest is NFKC-normalised (全角英数 → 半角, 半角カナ → 全角, ...);
3. MeCab splits it into words;
4. WordPiece splits each word into vocabulary pieces ("##" marks a continuation);
5. [CLS] / [SEP] are added, then the sequence is truncated and padded.

``Tokenizer.encode`` follows these steps one by one; ``Tokenizer.encode_batch``
gives the same ids faster (see its docstring).
"""
from __future__ import annotations

import gc
import io
import json
import multiprocessing
import os
import re
import signal
import unicodedata
from contextlib import contextmanager
from functools import lru_cache, partial
from pathlib import Path

from .config import read_json_object

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]  # Tohoku layout: ids 0..4
PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID = 0, 1, 2, 3, 4

MAX_CHARS_PER_WORD = 100  # longer words become a single [UNK]

# tokenizer_config.json of tohoku-nlp/bert-base-japanese-v3: the settings this module implements.
TOKENIZER_CONFIG = {
    "tokenizer_class": "BertJapaneseTokenizer",
    "model_max_length": 512,
    "do_lower_case": False,
    "word_tokenizer_type": "mecab",
    "subword_tokenizer_type": "wordpiece",
    "mecab_kwargs": {"mecab_dic": "unidic_lite"},
    # transformers 5 leaves token_type_ids out unless a tokenizer says it has them
    "model_input_names": ["input_ids", "token_type_ids", "attention_mask"],
}


# ---------------------------------------------------------------- vocabulary

def load_vocab(path) -> dict[str, int]:
    """Read a vocab.txt (one token a line; the line number is the id)."""
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise ValueError(f"{path}: {line} 行目が UTF-8 として読めません") from None
    tokens = [line.rstrip("\n") for line in io.StringIO(text, newline=None)]  # lines as open() reads them
    vocab = {}
    for i, token in enumerate(tokens):
        if token in vocab:
            raise ValueError(f"{path}: {i + 1} 行目のトークン {token!r} が重複しています")
        vocab[token] = i
    check_special_tokens(vocab, source=path)
    return vocab


def check_special_tokens(vocab: dict[str, int], source="語彙") -> None:
    """The five special tokens must sit at ids 0..4, as in the Tohoku models."""
    for expected_id, token in enumerate(SPECIAL_TOKENS):
        if token not in vocab:
            raise ValueError(f"{source}: 特殊トークン {token} がありません")
        if vocab[token] != expected_id:
            raise ValueError(
                f"{source}: 特殊トークン {token} の ID が {vocab[token]} です "
                f"(ID {expected_id} でなければなりません)"
            )


# --------------------------------------------------------------------- words

_SPECIAL_TOKEN_PATTERN = re.compile("(" + "|".join(re.escape(t) for t in SPECIAL_TOKENS) + ")")
# Where Tokenizer.leading_ids may cut a long text: after a run of these, where no word
# goes on. A whole run: MeCab makes the last 25 「。」 of a run one word, so a cut inside
# the run would end in a word the whole text does not have.
_CUT_POINT = re.compile("[\n \u3000。]+")
LEADING_MARGIN = 16  # tokens read past the ones wanted, then dropped


def split_special_tokens(text: str) -> list[str]:
    """'今日は[MASK]です' -> ['今日は', '[MASK]', 'です'] (empty pieces dropped)."""
    return [piece for piece in _SPECIAL_TOKEN_PATTERN.split(text) if piece]


def mecab_option(extra: str = "") -> str:
    """MeCab's command-line options for the unidic-lite dictionary, as transformers builds them."""
    import unidic_lite

    dic_dir = unidic_lite.DICDIR
    mecabrc = os.path.join(dic_dir, "mecabrc")
    return f'-d "{dic_dir}" -r "{mecabrc}" {extra}'.strip()


@lru_cache(maxsize=None)
def mecab_tagger(extra_option: str = ""):
    """One MeCab instance per option string (loading the dictionary takes a moment)."""
    import fugashi

    return fugashi.GenericTagger(mecab_option(extra_option))


def mecab_words(text: str) -> list[str]:
    """NFKC-normalise `text`, split it with MeCab, and return the words.

    MeCab drops ordinary spaces but keeps rarer whitespace (U+2028, U+0085, ...)
    as words. Like transformers, each word is also split on whitespace, so
    those disappear and no word is empty or holds whitespace. Special tokens
    are not treated here: see `Tokenizer.tokenize`.
    """
    text = unicodedata.normalize("NFKC", text)
    return [part for word in mecab_tagger()(text) for part in word.surface.split()]


def mecab_words_fast(text: str) -> list[str]:
    """The same words as `mecab_words`, read from MeCab's space-separated
    ("wakati") output instead of building one Python object per word.
    (Splitting that output on whitespace also does the per-word split.)"""
    text = unicodedata.normalize("NFKC", text)
    # The word-by-word API reads the text only up to a NUL character; this one
    # would read past it and could split the words before it differently.
    if "\0" in text:
        text = text[:text.index("\0")]
    return mecab_tagger("-Owakati").parse(text).split()


# ----------------------------------------------------------------- WordPiece

def wordpiece(word: str, vocab, max_chars: int = MAX_CHARS_PER_WORD) -> list[str]:
    """Greedy longest-match-first split of one word into vocabulary pieces.

    'ワークショップ' -> ['ワーク', '##ショップ']. A word longer than `max_chars`,
    or one with a part that no piece matches, becomes ['[UNK]'] as a whole.
    """
    if len(word) > max_chars:
        return ["[UNK]"]
    pieces = []
    start = 0
    while start < len(word):
        for end in range(len(word), start, -1):  # longest candidate first
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in vocab:
                break
        else:  # not even one character matched
            return ["[UNK]"]
        pieces.append(piece)
        start = end
    return pieces


# ------------------------------------------------- special tokens and length

def truncate(ids: list[int], pair_ids: list[int] | None, n_remove: int):
    """Remove `n_remove` tokens from the ends, like transformers' "longest_first".

    A pair first loses tokens from its longer text until both are equally
    long; then both lose tokens evenly, the second text losing the odd one.
    """
    if pair_ids is None:
        return ids[:max(len(ids) - n_remove, 0)], None
    from_longer = min(abs(len(ids) - len(pair_ids)), n_remove)
    rest = n_remove - from_longer
    cut_first, cut_second = rest // 2, rest - rest // 2
    if len(ids) > len(pair_ids):
        cut_first += from_longer
    else:
        cut_second += from_longer
    return ids[:max(len(ids) - cut_first, 0)], pair_ids[:max(len(pair_ids) - cut_second, 0)]


def add_special_tokens(ids: list[int], pair_ids: list[int] | None = None):
    """[CLS] A [SEP] (B [SEP]) and the segment ids: 0 for the first part, 1 for B [SEP]."""
    input_ids = [CLS_ID, *ids, SEP_ID]
    token_type_ids = [0] * len(input_ids)
    if pair_ids is not None:
        input_ids += [*pair_ids, SEP_ID]
        token_type_ids += [1] * (len(pair_ids) + 1)
    return input_ids, token_type_ids


def build_features(ids, pair_ids=None, max_length: int = 512, truncation: bool = True) -> dict:
    """Token ids of one or two texts -> input_ids, token_type_ids, attention_mask (unpadded)."""
    n_special = 2 if pair_ids is None else 3
    n_remove = len(ids) + len(pair_ids or []) + n_special - max_length
    if truncation and n_remove > 0:
        ids, pair_ids = truncate(ids, pair_ids, n_remove)
    input_ids, token_type_ids = add_special_tokens(ids, pair_ids)
    return {"input_ids": input_ids, "token_type_ids": token_type_ids,
            "attention_mask": [1] * len(input_ids)}


def pad(features: dict, length: int) -> dict:
    """Pad to `length` ([PAD], segment 0, mask 0) and add position_ids 0..length-1.

    Padding positions get position ids too (they continue counting, as in
    transformers' BERT); the attention mask makes the model ignore them.
    """
    n_pad = max(length - len(features["input_ids"]), 0)
    return {
        "input_ids": features["input_ids"] + [PAD_ID] * n_pad,
        "token_type_ids": features["token_type_ids"] + [0] * n_pad,
        "attention_mask": features["attention_mask"] + [0] * n_pad,
        "position_ids": list(range(len(features["input_ids"]) + n_pad)),
    }


# ----------------------------------------------------------------- tokenizer

class Tokenizer:
    """Japanese BERT tokenizer: MeCab words split into WordPiece pieces."""

    def __init__(self, vocab: dict[str, int]):
        check_special_tokens(vocab)
        if sorted(vocab.values()) != list(range(len(vocab))):
            raise ValueError("語彙の ID は 0 から始まる連番でなければなりません")
        self.vocab = dict(vocab)
        self.id_to_token = sorted(self.vocab, key=self.vocab.get)
        self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id = (
            PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID)
        self.word_ids = WordPieceCache(self.vocab)

    @classmethod
    def from_vocab_file(cls, path) -> "Tokenizer":
        return cls(load_vocab(path))

    @classmethod
    def from_pretrained(cls, directory) -> "Tokenizer":
        """Open a Hugging Face directory (vocab.txt + tokenizer_config.json)."""
        directory = Path(directory)
        config_path = directory / "tokenizer_config.json"
        if not config_path.exists():  # where the MeCab + WordPiece settings are written
            raise ValueError(f"{config_path} がありません。transformers はこのフォルダのトークナイザを "
                             "MeCab + WordPiece の BertJapaneseTokenizer として開けません")
        config = read_json_object(config_path)
        check_tokenizer_class(config.get("tokenizer_class"), directory)
        check_tokenizer_config(config, config_path)
        return cls.from_vocab_file(directory / "vocab.txt")

    def save(self, directory) -> Path:
        """Write vocab.txt and tokenizer_config.json so that transformers'
        AutoTokenizer opens the directory as the same BertJapaneseTokenizer."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "vocab.txt").write_text(
            "".join(token + "\n" for token in self.id_to_token), encoding="utf-8")
        (directory / "tokenizer_config.json").write_text(
            json.dumps(TOKENIZER_CONFIG, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        return directory

    @property
    def vocab_size(self) -> int:
        return len(self.id_to_token)

    # --- text -> tokens -> ids, one step at a time

    def tokenize(self, text: str) -> list[str]:
        """'東京で[MASK]を学ぶ' -> ['東京', 'で', '[MASK]', 'を', '学ぶ']."""
        tokens = []
        for piece in split_special_tokens(text):
            if piece in SPECIAL_TOKENS:
                tokens.append(piece)
                continue
            for word in mecab_words(piece):
                tokens.extend(wordpiece(word, self.vocab))
        return tokens

    def convert_tokens_to_ids(self, tokens) -> list[int]:
        return [self.vocab.get(token, self.unk_id) for token in tokens]

    def convert_ids_to_tokens(self, ids) -> list[str]:
        return [self.id_to_token[int(i)] for i in ids]

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        """Join the pieces back into text ('##' removed). MeCab drops spaces,
        so they do not come back (transformers' decode puts one between words)."""
        tokens = self.convert_ids_to_tokens(ids)
        if skip_special_tokens:
            tokens = [t for t in tokens if t not in SPECIAL_TOKENS]
        return "".join(t[2:] if t.startswith("##") else t for t in tokens)

    def encode(self, text: str, pair: str | None = None, max_length: int = 512,
               truncation: bool = True, padding=False) -> dict:
        """One text (or a pair) -> input_ids, token_type_ids, attention_mask, position_ids.

        padding: False, or "max_length" to pad up to `max_length`.
        """
        check_padding(padding, allowed=(False, "max_length"))
        ids = self.convert_tokens_to_ids(self.tokenize(text))
        pair_ids = None if pair is None else self.convert_tokens_to_ids(self.tokenize(pair))
        features = build_features(ids, pair_ids, max_length, truncation)
        length = max_length if padding == "max_length" else 0
        return pad(features, length)

    # --- the fast path

    def encode_batch(self, texts, pairs=None, max_length: int = 512, truncation: bool = True,
                     padding="longest", workers: int | None = None, return_tensors=None,
                     pool=None) -> dict:
        """Many texts (and optional pairs) at once: the same ids as `encode`, faster.

        What makes it fast (measured with bench/tokenizer_speed.py):
        - MeCab's space-separated output instead of one Python object per word;
        - WordPiece runs once per distinct word: words repeat, so a cache
          answers most of them;
        - Python's garbage collector is paused while the many lists are built;
        - with truncation, MeCab reads only the start of a long text (leading_ids);
        - with `workers` > 1, this process and `workers` - 1 others share the
          texts, one MeCab each. Starting processes costs some time, so it
          pays off for thousands of texts. A `pool` from `worker_pool` is
          started once and serves many calls; all the work is then done there.

        padding: "longest" (to the longest in the batch), "max_length" or False.
        Returns a dict of lists, or of torch tensors with return_tensors="pt".
        """
        check_padding(padding, allowed=(False, True, "longest", "max_length"))
        if return_tensors not in (None, "pt"):
            raise ValueError(f"return_tensors は None か 'pt' です ({return_tensors!r} が指定されました)")
        if pairs is not None and len(pairs) != len(texts):
            raise ValueError(f"texts ({len(texts)} 件) と pairs ({len(pairs)} 件) の数が違います")
        with gc_paused():
            # A truncated text needs no more than max_length of its tokens: read only those.
            all_ids = self.ids_of_texts(list(texts) + list(pairs or []), workers,
                                        max_tokens=max_length if truncation else None, pool=pool)
            first, second = all_ids[:len(texts)], all_ids[len(texts):]
            if pairs is None:
                second = [None] * len(texts)
            features = [build_features(a, b, max_length, truncation) for a, b in zip(first, second)]
            batch = collate(features, padding, max_length)
        return to_tensors(batch, padding) if return_tensors == "pt" else batch

    def ids_of_texts(self, texts: list[str], workers: int | None = None,
                     max_tokens: int | None = None, pool=None) -> list[list[int]]:
        """Token ids of each text, without special tokens; with `max_tokens`, only
        the first max_tokens of each (see leading_ids).

        With `workers` > 1, this process takes the first 1/workers of the texts
        and `workers` - 1 new processes share the rest, at the same time.
        With a `pool` (see worker_pool), its processes take them all.
        """
        run = partial(_worker_ids, max_tokens=max_tokens)
        if pool is not None:  # this process only waits (another thread may be feeding a GPU)
            return pool.map(run, texts, chunksize=max(1, min(256, len(texts) // 64)))
        workers = workers or 1
        if workers <= 1 or len(texts) < 64 * workers:  # too few to pay for starting processes
            return [self.leading_ids(text, max_tokens) for text in texts]
        share = len(texts) // workers
        chunksize = max(1, min(256, len(texts) // (8 * workers)))
        with self.worker_pool(workers - 1) as others:
            theirs = others.map_async(run, texts[share:], chunksize=chunksize)
            mine = [self.leading_ids(text, max_tokens) for text in texts[:share]]
            return mine + theirs.get()

    @contextmanager
    def worker_pool(self, workers: int):
        """`workers` processes, each with its own copy of this tokenizer, for
        `ids_of_texts(pool=...)`: one start for many calls. None when workers < 1."""
        if workers < 1:
            yield None
            return
        with multiprocessing.Pool(workers, initializer=_start_worker, initargs=(self.vocab,)) as pool:
            yield pool

    def leading_ids(self, text: str, n_tokens: int | None) -> list[int]:
        """fast_ids(text)[:n_tokens], reading only as much of a long text as that takes.

        MeCab's time grows with the text, and a model that reads 512 tokens needs
        about the first 800 characters of a Wikipedia page that may have 20,000.
        So: tokenize a prefix cut after line ends, spaces or 「。」 (where words end),
        twice as many characters as tokens wanted, and make it longer until it
        gives `LEADING_MARGIN` tokens more than wanted; the tokens near the cut are
        dropped. On the 5,857 livedoor articles this gives exactly the ids of the
        whole text (tests/test_tokenization.py checks it)."""
        if n_tokens is None:
            return self.fast_ids(text)
        chars = 2 * n_tokens
        while (cut := _CUT_POINT.search(text, chars)) is not None:
            ids = self.fast_ids(text[:cut.end()])
            if len(ids) >= n_tokens + LEADING_MARGIN:
                return ids[:n_tokens]
            chars = 2 * cut.end()
        return self.fast_ids(text)[:n_tokens]

    def fast_ids(self, text: str) -> list[int]:
        """Token ids of one text, the fast way (the same ids as tokenize + convert_tokens_to_ids)."""
        ids = []
        for piece in split_special_tokens(text):
            if piece in SPECIAL_TOKENS:
                ids.append(self.vocab[piece])
            else:
                for word in mecab_words_fast(piece):
                    ids.extend(self.word_ids[word])
        return ids


class WordPieceCache(dict):
    """word -> its WordPiece ids. A word seen for the first time is missing:
    dict then calls __missing__, which splits it and remembers the result."""

    def __init__(self, vocab: dict[str, int], max_words: int = 1_000_000):
        super().__init__()
        self.vocab = vocab
        self.max_words = max_words  # bounds the memory

    def __missing__(self, word: str) -> tuple[int, ...]:
        ids = tuple(self.vocab[piece] for piece in wordpiece(word, self.vocab))
        if len(self) < self.max_words:
            self[word] = ids
        return ids


def collate(features: list[dict], padding, max_length: int) -> dict:
    """Pad each row ("longest": to the longest row) and gather them by key."""
    if padding == "max_length":
        length = max_length
    elif padding:  # "longest" or True
        length = max((len(f["input_ids"]) for f in features), default=0)
    else:
        length = 0
    padded = [pad(f, length) for f in features]
    keys = ("input_ids", "token_type_ids", "attention_mask", "position_ids")
    return {key: [row[key] for row in padded] for key in keys}


@contextmanager
def gc_paused():
    """Pause Python's cycle collector: building thousands of lists makes it
    run again and again over all of them, and lists of ints hold no cycles."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def check_padding(padding, allowed) -> None:
    if padding not in allowed:
        choices = " / ".join(map(repr, allowed))
        raise ValueError(f"padding は {choices} のいずれかです ({padding!r} が指定されました)")


def to_tensors(batch: dict, padding) -> dict:
    import torch

    if not padding and len({len(row) for row in batch["input_ids"]}) > 1:
        raise ValueError("長さの違う系列はテンソルにできません: padding を指定してください")
    return {key: torch.tensor(rows, dtype=torch.long) for key, rows in batch.items()}


def check_tokenizer_class(name: str | None, directory: Path) -> None:
    """The class transformers would build: from tokenizer_config.json, else (older models,
    cl-tohoku/bert-base-japanese-v2) from config.json."""
    source = directory / "tokenizer_config.json"
    if name is None and (directory / "config.json").exists():
        source = directory / "config.json"
        name = read_json_object(source).get("tokenizer_class")
    if name != "BertJapaneseTokenizer":
        raise ValueError(f"{source}: tokenizer_class={name!r} には対応していません。"
                         "BertJapaneseTokenizer のトークナイザだけを扱えます")


def check_tokenizer_config(config: dict, source) -> None:
    """Refuse a tokenizer_config.json whose settings this module does not implement
    (each would make transformers' ids or layout differ from ours)."""
    given = config.get("mecab_kwargs") or {}
    mecab = given if isinstance(given, dict) else {}  # not an object: reported as mecab_kwargs
    actual = {
        "do_word_tokenize": config.get("do_word_tokenize", True),
        "do_subword_tokenize": config.get("do_subword_tokenize", True),
        "split_special_tokens": config.get("split_special_tokens", False),
        "truncation_side": config.get("truncation_side", "right"),
        "padding_side": config.get("padding_side", "right"),
        "word_tokenizer_type": config.get("word_tokenizer_type", "basic"),
        "subword_tokenizer_type": config.get("subword_tokenizer_type", "wordpiece"),
        "do_lower_case": config.get("do_lower_case", False),
        "mecab_kwargs": type(given).__name__,
        "mecab_dic": mecab.get("mecab_dic", "unidic_lite"),
        "mecab_option": mecab.get("mecab_option"),
        "normalize_text": mecab.get("normalize_text", True),
    }
    expected = {"do_word_tokenize": True, "do_subword_tokenize": True,
                "split_special_tokens": False, "truncation_side": "right", "padding_side": "right",
                "word_tokenizer_type": "mecab", "subword_tokenizer_type": "wordpiece",
                "do_lower_case": False, "mecab_kwargs": "dict", "mecab_dic": "unidic_lite", "mecab_option": None,
                "normalize_text": True}
    wrong = [f"{key}={actual[key]!r}" for key in expected if actual[key] != expected[key]]
    if wrong:
        raise ValueError(
            f"{source}: この設定には対応していません ({', '.join(wrong)})。"
            " BertJapaneseTokenizer の MeCab (unidic_lite) + WordPiece で、小文字化せず、特殊トークンを"
            "分けず、右側を切り詰めるトークナイザだけを扱えます"
        )


# Worker processes of `Tokenizer.ids_of_texts`: each builds its own tokenizer once.
_worker_tokenizer: Tokenizer | None = None


def _start_worker(vocab: dict[str, int]) -> None:
    global _worker_tokenizer
    _worker_tokenizer = Tokenizer(vocab)
    # Ctrl-C reaches every process of the terminal. A worker that died of it would
    # take its task with it, and whoever waits for that task would wait forever:
    # only the main process stops, then closes the pool.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _worker_ids(text: str, max_tokens: int | None = None) -> list[int]:
    return _worker_tokenizer.leading_ids(text, max_tokens)


# ------------------------------------------------------------------ training

def continuations(lines) -> list[str]:
    """"##" + each character seen inside a word (not at its start), sorted.

    The trainer adds these pieces itself, numbered in the order it meets them in a
    hash map: an order that changes from run to run, and with it the merges chosen
    among equally frequent pairs. Given first, in a fixed order, they make the same
    corpus give the same vocabulary every time (huggingface/tokenizers#1794)."""
    return sorted({"##" + char for line in lines for word in line.split() for char in word[1:]})


def train_vocab(texts, vocab_size: int, min_frequency: int = 2) -> dict[str, int]:
    """A new WordPiece vocabulary from a corpus: MeCab words, then the
    `tokenizers` library's WordPiece trainer. Special tokens come first (ids 0..4),
    then the "##" characters, the characters, and the merged pieces in the order
    the trainer added them. The same texts give the same vocabulary every time.

    The size can differ from `vocab_size`: every character seen in the corpus
    is kept (so few words end up as [UNK]), and a small corpus runs out of
    pieces worth adding.
    """
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import models, pre_tokenizers, trainers

    lines = [" ".join(mecab_words_fast(text)) for text in texts]  # read twice: kept (the corpus again, split)
    model = HFTokenizer(models.WordPiece(unk_token="[UNK]"))
    model.pre_tokenizer = pre_tokenizers.WhitespaceSplit()  # our words contain no whitespace
    trainer = trainers.WordPieceTrainer(
        # The ## pieces are ordinary pieces: given with the special tokens only to come first, in a fixed order.
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=SPECIAL_TOKENS + continuations(lines),
        continuing_subword_prefix="##", show_progress=False)
    model.train_from_iterator(lines, trainer)
    trained = model.get_vocab()
    return {token: i for i, token in enumerate(sorted(trained, key=trained.get))}
