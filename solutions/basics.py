"""The basics before BERT: softmax, cross-entropy, the batch loss, one gradient step."""
from __future__ import annotations

import torch


def softmax(logits, dim: int = -1):
    """Scores -> probabilities: exp(z_i) / Σ_j exp(z_j) along `dim`.

    The maximum is subtracted first: the result is the same and exp cannot overflow.
    """
    shifted = logits - logits.max(dim=dim, keepdim=True).values
    e = torch.exp(shifted)
    return e / e.sum(dim=dim, keepdim=True)


def cross_entropy(logits, targets):
    """−log p(correct class) for each example: (batch, classes), (batch,) -> (batch,).

    log p = z − logsumexp(z), which stays finite even for very large scores.
    """
    log_probs = logits - torch.logsumexp(logits, dim=-1, keepdim=True)
    return -log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)


def batch_loss(logits, targets):
    """The loss of a batch: the mean of its examples' cross-entropies."""
    return cross_entropy(logits, targets).mean()


def gradient_step(params, loss, lr: float) -> None:
    """One step of gradient descent, p ← p − lr · ∂loss/∂p, for every parameter.

    autograd computes the gradients (loss.backward()); the update itself is not
    recorded (torch.no_grad()), and the gradients are cleared for the next step.
    """
    loss.backward()
    with torch.no_grad():
        for p in params:
            p -= lr * p.grad
            p.grad = None
