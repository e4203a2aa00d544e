"""Feature-level distillation: hidden states and attention maps.

    hidden_state_loss(student_hidden, teacher_hidden, projector, mask, kind="mse")
    FeatureProjector(student_dim, teacher_dim, n_layers=None)   # learned Hs -> Ht
    layer_map(n_student, n_teacher)          # [(student_layer, teacher_layer), ...]
    attention_loss(student_attn, teacher_attn, head_map=None, heads=None, mask=None)
    head_map(n_student_heads, n_teacher_heads)  # teacher heads compared with each student head

Shapes: hidden (B, L, H) at positions already aligned between the models;
attentions (B, heads, L, L), rows (queries) stochastic, as returned by
`output_attentions=True`. mask: (B, L) bool, True = use this token / query row.
All maths in fp32.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from reasonkd.distill.losses.logit import kl_sum
from reasonkd.errors import ReasonkdError


def _rows_mask(mask, b_l, device):
    if mask is None:
        return torch.ones(b_l, dtype=torch.bool, device=device)
    if tuple(mask.shape) != tuple(b_l):
        raise ReasonkdError(f"mask has shape {tuple(mask.shape)}, expected (B, L) = {tuple(b_l)}")
    return mask.to(device=device, dtype=torch.bool)


def hidden_state_loss(student_hidden, teacher_hidden, projector=None, mask=None, kind="mse", normalize=False):
    """Distance between (projected) student and teacher hidden states, mean over unmasked tokens.

    student_hidden: (B, L, Hs); teacher_hidden: (B, L, Ht); projector: nn.Module Hs -> Ht (None when
    Hs == Ht; for a per-layer FeatureProjector pass `projector.at(i)`). With h = projector(student_hidden)
    and t = teacher_hidden at an unmasked row:
      kind="mse":    mean_d (h_d - t_d)^2        (= F.mse_loss over the selected rows)
      kind="cosine": 1 - cos(h, t)
    averaged over unmasked rows. normalize=True first applies a parameter-free LayerNorm to both
    (removes the scale gap between models of different width/depth).
    """
    if student_hidden.dim() != 3 or teacher_hidden.dim() != 3 or student_hidden.shape[:2] != teacher_hidden.shape[:2]:
        raise ReasonkdError(
            f"student_hidden {tuple(student_hidden.shape)} and teacher_hidden "
            f"{tuple(teacher_hidden.shape)} must be (B, L, H) with the same (B, L)"
        )
    rows = _rows_mask(mask, student_hidden.shape[:2], student_hidden.device)
    s = student_hidden[rows]
    if projector is not None:  # run it in its own dtype (fp32 weights, bf16 activations)
        param = next(projector.parameters(), None) if isinstance(projector, nn.Module) else None
        s = projector(s.to(param.dtype) if param is not None else s)
    s = s.float()
    t = teacher_hidden[rows].float()
    if s.shape[-1] != t.shape[-1]:
        raise ReasonkdError(
            f"hidden widths differ (student {s.shape[-1]}, teacher {t.shape[-1]}): pass a "
            "FeatureProjector(student_dim, teacher_dim)"
        )
    if normalize:
        s, t = F.layer_norm(s, s.shape[-1:]), F.layer_norm(t, t.shape[-1:])
    if kind == "mse":
        per_row = (s - t).pow(2).mean(-1)
    elif kind == "cosine":
        per_row = 1.0 - F.cosine_similarity(s, t, dim=-1, eps=1e-8)
    else:
        raise ReasonkdError(f"hidden_state_loss kind must be 'mse' or 'cosine', got {kind!r}")
    return per_row.sum() / max(per_row.shape[0], 1)


class FeatureProjector(nn.Module):
    """Learned linear map from student width Hs to teacher width Ht.

    n_layers=None: one shared nn.Linear; n_layers=k: a ModuleList of k, one per distilled layer
    pair, selected by `forward(x, layer=i)`. When Hs == Ht the weights start as the identity, so
    the loss starts as plain feature matching.
    """

    def __init__(self, student_dim: int, teacher_dim: int, n_layers: int | None = None, bias: bool = True):
        super().__init__()
        self.student_dim, self.teacher_dim, self.n_layers = student_dim, teacher_dim, n_layers
        count = 1 if n_layers is None else n_layers
        projs = [nn.Linear(student_dim, teacher_dim, bias=bias) for _ in range(count)]
        if student_dim == teacher_dim:
            for p in projs:
                nn.init.eye_(p.weight)
                if bias:
                    nn.init.zeros_(p.bias)
        self.projs = nn.ModuleList(projs)

    def at(self, layer: int) -> nn.Module:
        """The map for layer pair `layer` (an nn.Linear), e.g. for hidden_state_loss(projector=...)."""
        return self.projs[0] if self.n_layers is None else self.projs[layer]

    def forward(self, x: torch.Tensor, layer: int | None = None) -> torch.Tensor:
        if self.n_layers is None:
            return self.projs[0](x)
        if layer is None or not 0 <= layer < self.n_layers:
            raise ReasonkdError(
                f"FeatureProjector has {self.n_layers} per-layer maps; pass layer=0..{self.n_layers - 1}"
            )
        return self.projs[layer](x)


def layer_map(n_student: int, n_teacher: int, mode="uniform") -> list[tuple[int, int]]:
    """Pairs (student_layer i, teacher_layer j), 0-based block indices.

    mode="uniform": j = round((i + 1) * n_teacher / n_student) - 1, proportional depth, last
    student layer maps to the last teacher layer (TinyBERT-style). mode may instead be an explicit
    list: pairs [(i, j), ...] or one teacher index per student layer [j0, j1, ...].
    With HF `output_hidden_states`, block k's output is hidden_states[k + 1] (index 0 = embeddings).
    """
    if n_student < 1 or n_teacher < 1:
        raise ReasonkdError(f"layer counts must be >= 1, got student {n_student}, teacher {n_teacher}")
    if isinstance(mode, str):
        if mode != "uniform":
            raise ReasonkdError(f"layer_map mode must be 'uniform' or an explicit list, got {mode!r}")
        return [(i, int((i + 1) * n_teacher / n_student + 0.5) - 1) for i in range(n_student)]
    pairs = [tuple(p) if isinstance(p, (list, tuple)) else (i, p) for i, p in enumerate(mode)]
    for pair in pairs:
        if len(pair) != 2 or not (0 <= int(pair[0]) < n_student and 0 <= int(pair[1]) < n_teacher):
            raise ReasonkdError(
                f"layer_map entry {pair} out of range: student layers 0..{n_student - 1}, "
                f"teacher layers 0..{n_teacher - 1}"
            )
    return [(int(i), int(j)) for i, j in pairs]


def _proportional_groups(n_s: int, n_t: int) -> list[list[int]]:
    if n_t >= n_s:  # contiguous teacher groups, sizes differ by at most one
        return [list(range(h * n_t // n_s, (h + 1) * n_t // n_s)) for h in range(n_s)]
    return [[h * n_t // n_s] for h in range(n_s)]  # fewer teacher heads: repeat


def head_map(
    n_student_heads: int,
    n_teacher_heads: int,
    n_student_kv_heads: int | None = None,
    n_teacher_kv_heads: int | None = None,
) -> list[list[int]]:
    """For each student (query) head, the teacher heads it is compared against.

    More teacher heads: student head h gets the contiguous group
    [h * Ht // Hs, (h + 1) * Ht // Hs) whose rows are averaged. Fewer: head h repeats teacher
    head h * Ht // Hs. With grouped-query attention, pass both kv-head counts: when they are equal
    the mapping is done inside each kv group, so heads that share keys map to heads that share keys.
    (Attention weights always have one map per query head, GQA or not.)
    """
    if n_student_heads < 1 or n_teacher_heads < 1:
        raise ReasonkdError(f"head counts must be >= 1, got {n_student_heads}, {n_teacher_heads}")
    kv_s, kv_t = n_student_kv_heads, n_teacher_kv_heads
    if kv_s and kv_t and kv_s == kv_t and n_student_heads % kv_s == 0 and n_teacher_heads % kv_t == 0:
        gs, gt = n_student_heads // kv_s, n_teacher_heads // kv_t
        inner = _proportional_groups(gs, gt)
        return [[g * gt + j for j in inner[h]] for g in range(kv_s) for h in range(gs)]
    return _proportional_groups(n_student_heads, n_teacher_heads)


def attention_loss(student_attn, teacher_attn, head_map=None, heads=None, mask=None, eps=1e-12):
    """KL(teacher_row || student_row) of attention maps, mean over unmasked query rows and heads.

    student_attn: (B, Hs, L, L); teacher_attn: (B, Ht, L, L); row-stochastic over the last dim.
    head_map: list (len Hs) of teacher-head lists (default `head_map(Hs, Ht)`); the target of
    student head h is the mean of its teacher heads' rows. heads: optional teacher head indices to
    distill (selective distillation): groups are restricted to them and student heads left with no
    teacher head are skipped. mask: (B, L) bool over query rows. Student probabilities are floored
    at eps inside the log; zero teacher entries contribute 0.
    """
    if (
        student_attn.dim() != 4
        or teacher_attn.dim() != 4
        or student_attn.shape[0] != teacher_attn.shape[0]
        or student_attn.shape[2:] != teacher_attn.shape[2:]
    ):
        raise ReasonkdError(
            f"student_attn {tuple(student_attn.shape)} and teacher_attn "
            f"{tuple(teacher_attn.shape)} must be (B, heads, L, L) with the same B and L"
        )
    n_s, n_t = student_attn.shape[1], teacher_attn.shape[1]
    groups = head_map if head_map is not None else _default_head_map(n_s, n_t)
    if len(groups) != n_s:
        raise ReasonkdError(f"head_map has {len(groups)} entries for {n_s} student heads")
    keep = None if heads is None else {int(h) for h in heads}
    pairs = []
    for h, group in enumerate(groups):
        group = [int(j) for j in group if keep is None or int(j) in keep]
        if any(not 0 <= j < n_t for j in group):
            raise ReasonkdError(f"head_map entry {h} names teacher heads {group}; teacher has {n_t} heads")
        if group:
            pairs.append((h, group))
    rows = _rows_mask(mask, (student_attn.shape[0], student_attn.shape[2]), student_attn.device)
    n_rows = int(rows.sum())
    if not pairs or n_rows == 0:
        return student_attn.sum() * 0.0
    total = student_attn.new_zeros((), dtype=torch.float32)
    for h, group in pairs:
        q = student_attn[:, h][rows].float()  # (N, L)
        p = teacher_attn[:, group].float().mean(1)[rows]  # (N, L)
        total = total + kl_sum(p, p.clamp_min(eps).log(), q.clamp_min(eps).log(), dim=None)  # p_v = 0 adds 0
    return total / (n_rows * len(pairs))


_default_head_map = head_map
