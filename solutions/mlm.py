"""Masked-language-model masking: choose 15% of the tokens (or of the words), then 80/10/10."""
from __future__ import annotations

import torch

IGNORE_INDEX = -100  # cross_entropy skips these positions


def maskable_positions(input_ids: torch.Tensor, num_special: int = 5) -> torch.Tensor:
    """True where a token may be chosen: not [PAD], [UNK], [CLS], [SEP] or [MASK].

    In the Tohoku layout the special tokens are the ids below `num_special`.
    """
    return input_ids >= num_special


def mask_tokens(input_ids: torch.Tensor, vocab_size: int, *, mask_id: int = 4,
                num_special: int = 5, mask_prob: float = 0.15,
                generator: torch.Generator | None = None):
    """BERT's masking. Returns (masked input_ids, labels).

    Each ordinary token is chosen with probability `mask_prob`. Of the chosen:
    80% become [MASK], 10% a random ordinary token, 10% stay as they are.
    labels hold the original id at chosen positions and -100 everywhere else.
    """
    def uniform():
        return torch.rand(input_ids.shape, generator=generator, device=input_ids.device)

    chosen = maskable_positions(input_ids, num_special) & (uniform() < mask_prob)
    labels = torch.where(chosen, input_ids, IGNORE_INDEX)

    u = uniform()  # one draw decides among the three fates
    to_mask = chosen & (u < 0.8)
    to_random = chosen & (u >= 0.8) & (u < 0.9)

    random_ids = torch.randint(num_special, vocab_size, input_ids.shape,
                               generator=generator, device=input_ids.device)
    masked = input_ids.clone()
    masked[to_mask] = mask_id
    masked[to_random] = random_ids[to_random]
    return masked, labels


# ------------------------------------------------------- whole-word masking

def continuation_flags(id_to_token) -> torch.Tensor:
    """For each id, True if its token continues a word: the WordPiece pieces '##…'."""
    return torch.tensor([token.startswith("##") for token in id_to_token])


def word_start_positions(input_ids: torch.Tensor, is_continuation: torch.Tensor) -> torch.Tensor:
    """For each position, the position of the first piece of its word.

    '東京 ##都 に' -> [0, 0, 2]: a piece that continues a word points back to where
    the word began (the running maximum of the positions where words begin)."""
    positions = torch.arange(input_ids.shape[-1], device=input_ids.device).expand_as(input_ids)
    begins_word = ~is_continuation.to(input_ids.device)[input_ids]
    return torch.where(begins_word, positions, 0).cummax(dim=-1).values


def mask_whole_words(input_ids: torch.Tensor, is_continuation: torch.Tensor, vocab_size: int, *,
                     mask_id: int = 4, num_special: int = 5, mask_prob: float = 0.15,
                     generator: torch.Generator | None = None):
    """Whole-word masking, as bert-base-japanese-v3 was pre-trained.

    mask_tokens may hide '##都' and leave '東京' in view, and the rest of the word
    gives the piece away. Here the pieces of a MeCab word are chosen together:
    each word with probability `mask_prob` (so still about `mask_prob` of the
    tokens), and each chosen piece then gets mask_tokens' 80/10/10.
    is_continuation: continuation_flags(tokenizer.id_to_token).
    A piece cut off from its word (at the start of a packed block) counts as a word."""
    # Every ordinary piece's 80/10/10 fate, as if all were chosen ...
    fates, labels = mask_tokens(input_ids, vocab_size, mask_id=mask_id, num_special=num_special,
                                mask_prob=1.0, generator=generator)
    # ... then one draw per word, read at its first piece, decides which words are.
    draws = torch.rand(input_ids.shape, generator=generator, device=input_ids.device)
    word_draws = draws.gather(-1, word_start_positions(input_ids, is_continuation))
    chosen = maskable_positions(input_ids, num_special) & (word_draws < mask_prob)
    return torch.where(chosen, fates, input_ids), torch.where(chosen, labels, IGNORE_INDEX)
