"""Masked-language-model masking: choose 15% of the tokens, then 80/10/10."""
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
