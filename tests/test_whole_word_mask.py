"""Whole-word masking: the WordPiece pieces of one MeCab word are chosen together."""
import json

import pytest
import torch

from solutions.mlm import IGNORE_INDEX, continuation_flags, mask_whole_words, word_start_positions

VOCAB = 1000
CONTINUATION = torch.arange(VOCAB) >= 600  # ids 600…999 play the '##' pieces


@pytest.fixture(scope="module")
def demo_records():
    from solutions.data import make_demo_corpus

    return make_demo_corpus(n_pages=300, seed=1)


def words_by_hand(tokens):
    """A word index per token, -1 for special tokens: a new word at every token
    that is not a '##' piece (the reference, written without tensors)."""
    ids, word = [], -1
    for token in tokens:
        if token.startswith("[") and token.endswith("]"):
            ids.append(-1)
            continue
        if not token.startswith("##") or word < 0:
            word += 1
        ids.append(word)
    return ids


def random_words(n=500, seq=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, VOCAB, (n, seq), generator=g)
    ids[:, 0], ids[:, -1] = 2, 3          # [CLS] ... [SEP]
    ids[: n // 4, seq // 2:] = 0          # some rows padded
    return ids


def test_pieces_of_each_word_share_one_fate(demo_records):
    from solutions.tokenization import Tokenizer, train_vocab

    tokenizer = Tokenizer(train_vocab([r.text for r in demo_records], 400))  # small: many words in pieces
    batch = tokenizer.encode_batch([r.text for r in demo_records[:40]], max_length=96, return_tensors="pt")
    ids = batch["input_ids"]
    flags = continuation_flags(tokenizer.id_to_token)
    words = [words_by_hand(tokenizer.convert_ids_to_tokens(row)) for row in ids]
    multi_piece = sum(row.count(w) > 1 for row in words for w in set(row) if w >= 0)
    assert multi_piece > 100  # the test needs words of several pieces

    seen_partial_row = False
    for seed in range(20):
        masked, labels = mask_whole_words(ids, flags, tokenizer.vocab_size, mask_id=tokenizer.mask_id,
                                          generator=torch.Generator().manual_seed(seed))
        chosen = (labels != IGNORE_INDEX).tolist()
        for row_words, row_chosen in zip(words, chosen):
            fates = {}
            for word, is_chosen in zip(row_words, row_chosen):
                if word < 0:
                    assert not is_chosen  # [CLS], [SEP], [PAD] never
                else:
                    fates.setdefault(word, set()).add(is_chosen)
            assert all(len(f) == 1 for f in fates.values())  # all pieces of a word, or none
            seen_partial_row |= {True} in fates.values() and {False} in fates.values()
        assert torch.equal(labels[labels != IGNORE_INDEX], ids[labels != IGNORE_INDEX])
    assert seen_partial_row


def test_word_starts_point_back_to_the_first_piece():
    ids = torch.tensor([[2, 10, 700, 701, 11, 702, 3],
                        [2, 703, 12, 13, 704, 3, 0]])  # a block may begin inside a word (703)
    assert word_start_positions(ids, CONTINUATION).tolist() == [[0, 1, 1, 1, 4, 4, 6],
                                                                [0, 0, 2, 3, 3, 5, 6]]


def test_statistics_over_100k_tokens():
    ids = random_words()
    masked, labels = mask_whole_words(ids, CONTINUATION, VOCAB, generator=torch.Generator().manual_seed(1))
    ordinary = ids >= 5
    chosen = labels != IGNORE_INDEX
    first_pieces = ordinary & (word_start_positions(ids, CONTINUATION) == torch.arange(ids.shape[1]))
    assert ordinary.sum() > 100_000
    # 15% of the words, so about 15% of the tokens too
    assert abs(chosen[first_pieces].float().mean().item() - 0.15) < 0.01
    assert abs(chosen[ordinary].float().mean().item() - 0.15) < 0.01
    n = chosen.sum().item()
    became_mask = (masked[chosen] == 4).sum().item() / n
    unchanged = (masked[chosen] == ids[chosen]).sum().item() / n
    assert abs(became_mask - 0.8) < 0.01 and abs(unchanged - 0.1) < 0.01
    assert torch.all(masked[chosen & (masked != 4)] >= 5)  # a random replacement is never special
    assert torch.equal(masked[~chosen], ids[~chosen])


def test_deterministic_under_a_seed():
    ids = random_words(20, 64)
    a = mask_whole_words(ids, CONTINUATION, VOCAB, generator=torch.Generator().manual_seed(7))
    b = mask_whole_words(ids, CONTINUATION, VOCAB, generator=torch.Generator().manual_seed(7))
    c = mask_whole_words(ids, CONTINUATION, VOCAB, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and not torch.equal(a[1], c[1])


def test_pretrain_command_masks_whole_words(tmp_path, demo_records, monkeypatch):
    """`bert-workshop pretrain --whole-word-mask` trains on whole-word masks, and says so in its summary."""
    from autograder import cli
    from solutions import mlm, pretrain
    from solutions.data import write_jsonl

    calls = []

    def recording(input_ids, is_continuation, vocab_size, **kwargs):
        calls.append(int(is_continuation.sum()))
        return mlm.mask_whole_words(input_ids, is_continuation, vocab_size, **kwargs)

    monkeypatch.setattr(pretrain, "mask_whole_words", recording)
    data = tmp_path / "train.jsonl"
    write_jsonl(data, demo_records[:200])
    assert cli.main(["pretrain", "--data", str(data), "--out", str(tmp_path / "pre"), "--vocab-size", "500",
                     "--max-steps", "3", "--batch-size", "8", "--whole-word-mask", "--device", "cpu"]) == 0
    assert len(calls) == 3 and calls[0] > 0  # every step, with the vocabulary's '##' pieces
    summary = json.loads((tmp_path / "pre" / "pretrain_summary.json").read_text())
    assert summary["settings"]["whole_word_mask"] is True


@pytest.mark.parametrize("whole_words", [False, True])
def test_masking_follows_the_setting(whole_words):
    from solutions.pretrain import PretrainSettings, masking
    from solutions.tokenization import Tokenizer

    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "東京", "##都", "に"])}
    ids = torch.tensor([[2] + [5, 6, 7] * 300 + [3]])
    mask = masking(Tokenizer(vocab), PretrainSettings(mask_prob=0.5, whole_word_mask=whole_words))
    chosen = mask(ids, generator=torch.Generator().manual_seed(0))[1] != IGNORE_INDEX
    same_fate = (chosen[0, 1:-1:3] == chosen[0, 2:-1:3]).all().item()  # '東京' and its '##都'
    assert same_fate == whole_words
