"""Distillation losses: pure tensor functions, shapes and maths in each docstring.

    logit.py        dense divergences (forward/reverse KL, generalised JSD, skew KL, TVD), the
                    article's `distillation_loss`, the DIVERGENCES registry
    sparse.py       the same against a top-k teacher (logit cache) with an "other" bucket
    chunked.py      the same a chunk of tokens at a time (bf16 logits or hidden states + lm_head)
    feature.py      hidden-state and attention losses, projector, layer and head maps
    cross_vocab.py  teacher and student with different tokenizers (shared-vocab KL, ULD)

Conventions: student_logits / teacher_logits (B, L, V) aligned by the caller (position i
predicts token i+1 in both), labels (B, L) with -100 ignored, or mask (B, L) bool overriding
labels; fp32 maths; per-token mean over unmasked rows. Tests: tests/distill/test_losses*.py.
"""

from reasonkd.distill.losses._common import BUCKET_FLOOR, IGNORE_INDEX, token_mask
from reasonkd.distill.losses.chunked import (chunked_distillation_loss, chunked_distillation_loss_terms,
                                             chunked_divergence, chunked_divergence_from_hidden)
from reasonkd.distill.losses.cross_vocab import (cross_vocab_kl, cross_vocab_rows, cross_vocab_topk_rows, uld_loss,
                                                  uld_rows)
from reasonkd.distill.losses.feature import (FeatureProjector, attention_loss, head_map, hidden_state_loss,
                                             layer_map)
from reasonkd.distill.losses.logit import (DIVERGENCES, ROW_DIVERGENCES, distillation_loss,
                                           distillation_loss_terms, forward_kl, generalized_jsd,
                                           get_divergence, reverse_kl, skew_kl, skew_reverse_kl, tvd)
from reasonkd.distill.losses.sparse import (sparse_distillation_loss, sparse_distillation_loss_terms,
                                            sparse_divergence)

__all__ = [
    "BUCKET_FLOOR", "IGNORE_INDEX", "token_mask",
    "DIVERGENCES", "ROW_DIVERGENCES", "get_divergence",
    "forward_kl", "reverse_kl", "generalized_jsd", "skew_kl", "skew_reverse_kl", "tvd",
    "distillation_loss", "distillation_loss_terms",
    "sparse_divergence", "sparse_distillation_loss", "sparse_distillation_loss_terms",
    "chunked_divergence", "chunked_divergence_from_hidden", "chunked_distillation_loss",
    "chunked_distillation_loss_terms",
    "hidden_state_loss", "FeatureProjector", "layer_map", "attention_loss", "head_map",
    "cross_vocab_kl", "cross_vocab_rows", "cross_vocab_topk_rows", "uld_loss", "uld_rows",
]
