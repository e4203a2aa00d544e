"""Negative-sample losses against plain references and by their properties (vocab 7, fixed seed)."""

import math

import pytest
import torch
import torch.nn.functional as F

from reasonkd.distill.negatives import pairwise_preference_loss, sequence_logprob, unlikelihood_loss
from reasonkd.errors import ReasonkdError

B, L, V = 3, 6, 7


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(B, L, V, generator=g, dtype=torch.float64)
    labels = torch.randint(0, V, (B, L), generator=g)
    labels[0, :2] = -100
    labels[2, -1] = -100
    neg = torch.zeros(B, L, dtype=torch.bool)
    neg[0, 1:4] = True  # includes an ignored position (0, 1)
    neg[1, 2:5] = True
    neg[2, 4:] = True   # includes an ignored position (2, 5)
    return logits, labels, neg


def test_unlikelihood_matches_loop_reference(batch):
    logits, labels, neg = batch
    probs = logits.softmax(-1)
    terms = [-math.log(1 - float(probs[b, t, labels[b, t]]))
             for b in range(B) for t in range(L) if neg[b, t] and labels[b, t] != -100]
    got = unlikelihood_loss(logits, labels, neg)
    assert len(terms) == 6
    assert got.item() == pytest.approx(sum(terms) / len(terms), abs=1e-6)


def test_unlikelihood_ignores_unmarked_and_ignored_positions(batch):
    logits, labels, neg = batch
    base = unlikelihood_loss(logits, labels, neg)
    changed = logits.clone()
    changed[~neg] += 5 * torch.randn_like(changed[~neg])   # unmarked tokens
    changed[0, 1] += 10                                    # marked but label -100
    assert unlikelihood_loss(changed, labels, neg).item() == pytest.approx(base.item(), abs=1e-9)


def test_unlikelihood_near_zero_when_wrong_token_unlikely_and_large_when_certain(batch):
    logits, labels, neg = batch
    low = logits.clone().scatter(-1, labels.clamp_min(0).unsqueeze(-1), -30.0)
    assert unlikelihood_loss(low, labels, neg).item() < 1e-9
    high = logits.clone().scatter(-1, labels.clamp_min(0).unsqueeze(-1), 30.0)
    assert unlikelihood_loss(high, labels, neg).item() > 10
    assert math.isfinite(unlikelihood_loss(high * 100, labels, neg).item())


def test_unlikelihood_gradient_lowers_wrong_token_probability(batch):
    logits, labels, neg = batch
    logits = logits.clone().requires_grad_(True)
    unlikelihood_loss(logits, labels, neg).backward()
    g = logits.grad.gather(-1, labels.clamp_min(0).unsqueeze(-1)).squeeze(-1)
    use = neg & (labels != -100)
    assert (g[use] > 0).all()            # gradient descent pushes the wrong token's logit down
    assert (logits.grad[~use] == 0).all()


def test_unlikelihood_no_marked_tokens_is_zero(batch):
    logits, labels, _ = batch
    assert unlikelihood_loss(logits, labels, torch.zeros(B, L, dtype=torch.bool)).item() == 0.0


def test_sequence_logprob_matches_cross_entropy(batch):
    logits, labels, _ = batch
    ref = -F.cross_entropy(logits.transpose(1, 2), labels, ignore_index=-100, reduction="none").sum(-1)
    got = sequence_logprob(logits, labels)
    assert got.shape == (B,)
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
    assert a.item() == pytest.approx(math.log(2), abs=1e-6)   # policy == reference: no preference yet


def test_shape_errors(batch):
    logits, labels, neg = batch
    with pytest.raises(ReasonkdError, match="negative_mask"):
        unlikelihood_loss(logits, labels, neg[:, :2])
    with pytest.raises(ReasonkdError, match=r"\(B, L, V\)"):
        sequence_logprob(logits[0], labels)
    with pytest.raises(ReasonkdError, match="both"):
        pairwise_preference_loss(torch.zeros(2), torch.zeros(2), ref_chosen_logps=torch.zeros(2))
