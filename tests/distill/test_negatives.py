"""Negative-sample losses against plain references and by their properties (vocab 7, fixed seed)."""

import math

import pytest
import torch
import torch.nn.functional as F

from reasonkd.distill.negatives import negative_terms, pairwise_preference_loss, sequence_logprobs, unlikelihood
from reasonkd.errors import ReasonkdError

N, V = 8, 7


@pytest.fixture
def rows():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(N, V, generator=g, dtype=torch.float64)
    targets = torch.randint(0, V, (N,), generator=g)
    return logits, targets


def test_unlikelihood_matches_loop_reference(rows):
    logits, targets = rows
    probs = logits.softmax(-1)
    ref = [-math.log(1 - float(probs[n, targets[n]])) for n in range(N)]
    got = unlikelihood(logits, targets)
    assert got.shape == (N,) and got.tolist() == pytest.approx(ref, abs=1e-6)


def test_unlikelihood_near_zero_when_wrong_token_unlikely_and_large_when_certain(rows):
    logits, targets = rows
    low = logits.clone().scatter(-1, targets.unsqueeze(-1), -30.0)
    assert unlikelihood(low, targets).max().item() < 1e-9
    high = logits.clone().scatter(-1, targets.unsqueeze(-1), 30.0)
    assert unlikelihood(high, targets).min().item() > 10
    assert torch.isfinite(unlikelihood(high * 100, targets)).all()


def test_unlikelihood_term_counts_only_the_wrong_step_and_lowers_its_tokens(rows):
    logits, targets = rows
    logits = logits.clone().requires_grad_(True)
    wrong = torch.arange(N) % 3 == 0
    batch_index = torch.zeros(N, dtype=torch.long)
    out = negative_terms(
        {"unlikelihood"},
        None,
        targets,
        batch_index,
        logits,
        targets,
        batch_index,
        wrong,
        torch.ones(1, dtype=torch.bool),
    )["unlikelihood"]
    assert out.item() == pytest.approx(unlikelihood(logits, targets)[wrong].mean().item(), abs=1e-9)
    out.backward()
    g = logits.grad.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    assert (g[wrong] > 0).all()  # gradient descent pushes the wrong token's logit down
    assert (logits.grad[~wrong] == 0).all()
    none = negative_terms(
        {"unlikelihood"},
        None,
        targets,
        batch_index,
        logits,
        targets,
        batch_index,
        torch.zeros(N, dtype=torch.bool),
        torch.ones(1, dtype=torch.bool),
    )
    assert none["unlikelihood"].item() == 0.0


def test_sequence_logprobs_matches_cross_entropy(rows):
    logits, targets = rows
    seq = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2])
    per_row = -F.cross_entropy(logits, targets, reduction="none")
    ref = torch.stack([per_row[seq == b].sum() for b in range(3)])
    got = sequence_logprobs(logits, targets, seq, 3)
    assert got.shape == (3,)
    torch.testing.assert_close(got, ref.float(), atol=1e-6, rtol=0)


def test_preference_loss_matches_reference_formula():
    g = torch.Generator().manual_seed(1)
    c, r, rc, rr = (torch.randn(5, generator=g) * 10 for _ in range(4))
    beta = 0.3
    ref = torch.stack([-torch.log(torch.sigmoid(beta * ((c[i] - rc[i]) - (r[i] - rr[i])))) for i in range(5)]).mean()
    got = pairwise_preference_loss(c, r, beta=beta, ref_chosen_logps=rc, ref_rejected_logps=rr)
    assert got.item() == pytest.approx(ref.item(), abs=1e-6)
    no_ref = pairwise_preference_loss(c, r, beta=beta)
    assert no_ref.item() == pytest.approx((-F.logsigmoid(beta * (c - r))).mean().item(), abs=1e-6)


def test_preference_loss_decreasing_in_margin_and_log2_at_zero():
    margins = torch.linspace(-20, 20, 41)
    losses = [pairwise_preference_loss(m.view(1), torch.zeros(1)).item() for m in margins]
    assert all(a > b for a, b in zip(losses, losses[1:]))
    assert pairwise_preference_loss(torch.zeros(2), torch.zeros(2)).item() == pytest.approx(math.log(2), abs=1e-6)


def test_preference_loss_shift_invariant_with_reference():
    c, r = torch.tensor([-5.0, -3.0]), torch.tensor([-6.0, -1.0])
    a = pairwise_preference_loss(c, r, ref_chosen_logps=c, ref_rejected_logps=r)
    assert a.item() == pytest.approx(math.log(2), abs=1e-6)  # policy == reference: no preference yet


def test_shape_errors(rows):
    logits, targets = rows
    with pytest.raises(ReasonkdError, match=r"\(N, V\)"):
        unlikelihood(logits[None], targets)
    with pytest.raises(ReasonkdError, match="both"):
        pairwise_preference_loss(torch.zeros(2), torch.zeros(2), ref_chosen_logps=torch.zeros(2))
