"""Multi-teacher logit fusion (reasonkd.distill.fusion, fused_cache): one teacher is the single-teacher path
exactly, weights are normalised, weight 0 changes nothing, verification weights by hand, two teachers with
different tokenizers fused into one student vocabulary, and a tiny offline run on two teachers' caches."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch

from reasonkd.distill import fusion as F
from reasonkd.distill import losses as L
from reasonkd.distill.align import build_vocab_map
from reasonkd.distill.fused_cache import FusedLogitCache, _Teacher
from reasonkd.errors import ReasonkdError
from reasonkd.models import load_model
from reasonkd.models.logit_cache import LogitCache
from reasonkd.models.logit_writer import write_logit_cache
from reasonkd.teacher.traces import load_traces

sys.path.insert(0, str(Path(__file__).parent))
from _tiny_distill import write_traces  # noqa: E402

V = 11


def _logits(seed: int, n: int = 5, v: int = V) -> torch.Tensor:
    return torch.randn(n, v, generator=torch.Generator().manual_seed(seed)) * 2


def test_one_teacher_equals_the_single_teacher_path_exactly():
    s, t = _logits(0), _logits(1)
    single = L.forward_kl(L.logprobs(s), L.logprobs(t))
    fused = F.fuse_logprobs([L.logprobs(t)], F.static_weights([3.0]))
    assert torch.equal(fused, L.logprobs(t))
    assert torch.equal(L.forward_kl(L.logprobs(s), fused), single)
    ids, lp = L.logprobs(t).topk(4, dim=-1)[::-1]
    f_ids, f_lp = F.fuse_topk([(ids, lp)], F.static_weights([0.7]), V, k=4)
    assert torch.equal(f_ids, ids) and torch.equal(f_lp, lp)
    assert torch.equal(L.forward_kl(*L.topk_logprobs(s, f_ids, f_lp)), L.forward_kl(*L.topk_logprobs(s, ids, lp)))
    # the general (dense) path agrees too, up to the exp/log round trip
    g_ids, g_lp = F.fuse_topk([(ids, lp), (ids, lp)], F.static_weights([1, 1]), V, k=4)
    assert torch.equal(g_ids, ids) and torch.allclose(g_lp, lp, atol=1e-6)


def test_weights_are_normalised_and_the_mixture_is_a_distribution():
    assert F.static_weights([1.0, 3.0]).tolist() == [0.25, 0.75]
    a, b = L.logprobs(_logits(2)), L.logprobs(_logits(3))
    fused = F.fuse_logprobs([a, b], F.static_weights([2.0, 6.0]))
    assert torch.allclose(fused, F.fuse_logprobs([a, b], F.static_weights([1.0, 3.0])))
    assert torch.allclose(fused.exp().sum(-1), torch.ones(5), atol=1e-6)
    ref = (0.25 * a.double().exp() + 0.75 * b.double().exp()).log()
    assert torch.allclose(fused.double(), ref, atol=1e-6)
    for bad in ([], [0.0, 0.0], [1.0, -1.0]):
        with pytest.raises(ReasonkdError):
            F.static_weights(bad)


def test_a_teacher_with_weight_zero_changes_nothing():
    a, b = L.logprobs(_logits(4)), L.logprobs(_logits(5))
    assert torch.equal(F.fuse_logprobs([a, b], F.static_weights([2.0, 0.0])), a)
    ids_a, lp_a = a.topk(3, dim=-1)[::-1]
    ids_b, lp_b = b.topk(3, dim=-1)[::-1]
    got = F.fuse_topk([(ids_a, lp_a), (ids_b, lp_b)], F.static_weights([1.0, 0.0]), V, k=3)
    assert torch.equal(got[0], ids_a) and torch.equal(got[1], lp_a)
    w = F.confidence_weights([a, b], [1.0, 0.0])
    assert torch.equal(w[:, 1], torch.zeros(5)) and torch.allclose(w[:, 0], torch.ones(5))


def test_verification_weights_by_hand():
    w = F.static_weights([0.5, 0.3, 0.2])
    correct = torch.tensor([[True, False, True], [False, False, False], [False, True, False], [True, True, True]])
    got = F.verification_weights(w, correct)
    want = torch.tensor(
        [[0.5 / 0.7, 0.0, 0.2 / 0.7], [0.5, 0.3, 0.2], [0.0, 1.0, 0.0], [0.5, 0.3, 0.2]], dtype=torch.float64
    )
    assert torch.allclose(got, want, atol=1e-12)
    # problem 0 by hand: teacher 1 was wrong, so its distribution is absent from the target
    a, b, c = (L.logprobs(_logits(s, n=1)) for s in (6, 7, 8))
    fused = F.fuse_logprobs([a, b, c], got[0:1])
    ref = (0.5 / 0.7 * a.double().exp() + 0.2 / 0.7 * c.double().exp()).log()
    assert torch.allclose(fused.double(), ref, atol=1e-6)


def test_confidence_prefers_the_sharper_teacher():
    sharp = L.logprobs(torch.tensor([[8.0, 0, 0, 0]]))
    flat = L.logprobs(torch.zeros(1, 4))
    w = F.confidence_weights([flat, sharp], [1.0, 1.0])
    h = torch.tensor([math.log(4), float(F.entropy(sharp)[0])])
    assert torch.allclose(w[0], torch.softmax(-h, dim=0), atol=1e-6) and w[0, 1] > 0.75


def test_two_teachers_with_different_tokenizers_fused_into_the_student_vocabulary(tiny_llama_dir, tiny_qwen_dir):
    from transformers import AutoTokenizer

    s_tok = AutoTokenizer.from_pretrained(tiny_llama_dir)  # student and teacher A: tokenizer "a"
    b_tok = AutoTokenizer.from_pretrained(tiny_qwen_dir)  # teacher B: tokenizer "b"
    vs, vb = len(s_tok), len(b_tok)
    vmap = build_vocab_map(s_tok, b_tok, vs, vb)
    assert 0 < len(vmap) < vb  # B holds tokens the student lacks: they cannot be targets
    id_map = F.id_map_from(vmap, vb)
    a_logits, b_logits = _logits(9, n=3, v=vs), _logits(10, n=3, v=vb)
    # B's top-k in its ids, mapped; unmapped entries drop into the tail
    ids_b, lp_b = L.logprobs(b_logits).topk(6, dim=-1)[::-1]
    m_ids, m_lp = F.sparse_to_student(ids_b, lp_b, id_map)
    ids_a, lp_a = L.logprobs(a_logits).topk(6, dim=-1)[::-1]
    f_ids, f_lp = F.fuse_topk([(ids_a, lp_a), (m_ids, m_lp)], F.static_weights([1, 1]), vs, k=8)
    assert int(f_ids.max()) < vs and bool((f_lp.exp().sum(-1) <= 1 + 1e-6).all())
    values = L.forward_kl(*L.topk_logprobs(_logits(11, n=3, v=vs), f_ids, f_lp))
    assert values.shape == (3,) and torch.isfinite(values).all()


@pytest.fixture(scope="module")
def two_caches(tmp_path_factory, tiny_llama_dir, tiny_qwen_dir):
    root = tmp_path_factory.mktemp("fusion")
    examples = load_traces(write_traces(root / "traces.jsonl", n=8))
    caches = {}
    for name, folder in (("a", tiny_llama_dir), ("b", tiny_qwen_dir)):
        model, tok = load_model(str(folder), dtype="float32")
        caches[name] = write_logit_cache(
            model, tok, examples, root / f"cache-{name}", k=5, batch_size=4, progress=False
        )
    return root, examples, caches


def _fused(weights, caches, examples, tiny_llama_dir, tiny_qwen_dir, weighting="static", verdicts=None):
    from transformers import AutoTokenizer

    from reasonkd.distill.crosstok import PairEncoder

    s_tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    b_tok = AutoTokenizer.from_pretrained(tiny_qwen_dir)
    teachers = [_Teacher("a", LogitCache(caches["a"]), None, None)]
    if "b" in weights:
        enc = PairEncoder(s_tok, b_tok, len(s_tok), len(b_tok), max_length=96)
        teachers.append(
            _Teacher(
                "b",
                LogitCache(caches["b"]),
                enc,
                F.id_map_from(build_vocab_map(s_tok, b_tok, len(s_tok), len(b_tok)), len(b_tok)),
            )
        )
    return FusedLogitCache(
        teachers,
        list(weights.values()),
        weighting,
        5,
        s_tok,
        len(s_tok),
        {ex["id"]: ex for ex in examples},
        96,
        verdicts,
    ), s_tok


def test_fused_cache_one_teacher_is_its_cache(two_caches, tiny_llama_dir, tiny_qwen_dir):
    root, examples, caches = two_caches
    fused, _ = _fused({"a": 1.0}, caches, examples, tiny_llama_dir, tiny_qwen_dir)
    plain = LogitCache(caches["a"])
    for ex in examples:
        got, want = fused.get(ex["id"]), plain.get(ex["id"])
        assert torch.equal(got.topk_ids, want.topk_ids.long())
        assert torch.equal(got.topk_logprobs, want.topk_logprobs.float())
        assert torch.equal(got.token_ids[got.trace_start :], want.token_ids[want.trace_start :].long())
        assert bool(got.row_mask.all())


def test_fused_cache_two_tokenizers_and_verification(two_caches, tiny_llama_dir, tiny_qwen_dir):
    from reasonkd.distill.data import collate, encode_all

    root, examples, caches = two_caches
    fused, s_tok = _fused({"a": 1.0, "b": 1.0}, caches, examples, tiny_llama_dir, tiny_qwen_dir)
    entry = fused.get(examples[0]["id"])
    assert entry.topk_ids.shape[1] == 5 and int(entry.topk_ids.max()) < len(s_tok)
    assert bool(entry.row_mask.all())  # teacher A covers every row
    batch = collate(encode_all(examples[:2], s_tok, 96), s_tok.pad_token_id, cache=fused)
    assert batch["soft_mask"].sum() == sum(len(e.input_ids) - e.prompt_len for e in encode_all(examples[:2], s_tok, 96))
    # verification: teacher b wrong on q0 -> q0's target is teacher a's alone; b right on q1 -> a mixture
    verdicts = {"q0": {"a": True, "b": False}, "q1": {"a": True, "b": True}}
    ver, _ = _fused({"a": 1.0, "b": 1.0}, caches, examples, tiny_llama_dir, tiny_qwen_dir, "verification", verdicts)
    alone = LogitCache(caches["a"]).get("q0")
    got = ver.get("q0")
    assert torch.equal(got.topk_ids, alone.topk_ids.long()) and torch.equal(
        got.topk_logprobs, alone.topk_logprobs.float()
    )
    assert not torch.equal(ver.get("q1").topk_logprobs, LogitCache(caches["a"]).get("q1").topk_logprobs.float())
    conf, _ = _fused({"a": 1.0, "b": 1.0}, caches, examples, tiny_llama_dir, tiny_qwen_dir, "confidence")
    assert torch.isfinite(conf.get("q2").topk_logprobs[:, 0]).all()


def test_recipe_with_two_teachers_trains_on_their_fused_caches(two_caches, tiny_llama_dir, tiny_qwen_dir, tmp_path):
    from tiny_models import build_tiny_model

    from reasonkd.config import load_config
    from reasonkd.distill.recipe import DistillRecipe
    from reasonkd.distill.stages import run_recipe
    from reasonkd.utils.io import read_jsonl

    root, examples, caches = two_caches
    student = build_tiny_model(
        tmp_path / "student", arch="llama", tokenizer="a", hidden=64, layers=2, heads=4, kv_heads=2, seed=2
    )
    recipe = tmp_path / "mt.yaml"
    recipe.write_text(f"""\
student: {student}
teachers:
  - {{model: {tiny_llama_dir}, weight: 1.0, logit_cache: {caches["a"]}}}
  - {{model: {tiny_qwen_dir}, weight: 2.0, logit_cache: {caches["b"]}}}
data: {{path: {root / "traces.jsonl"}}}
output_dir: {tmp_path / "run"}
bf16_autocast: false
max_length: 96
batch_size: 4
save_every: 0
chunk_rows: 32
stages:
  - {{name: logic, kind: logic, steps: 3, lr: 0.003}}
""")
    cfg = load_config(DistillRecipe, recipe)
    cfg.check_ready()
    assert cfg.teacher == str(tiny_llama_dir) and len(cfg.teachers) == 2
    run_recipe(cfg, progress=False)
    rows = read_jsonl(tmp_path / "run" / "stages" / "1-logic" / "metrics.jsonl")
    assert len(rows) == 3 and all(
        math.isfinite(r["terms"]["forward_kl"]) and r["terms"]["forward_kl"] > 0 for r in rows
    )


def test_bad_multi_teacher_recipes_name_the_key(tmp_path):
    from reasonkd.config import from_dict
    from reasonkd.distill.fused_cache import open_fused_cache
    from reasonkd.distill.recipe import DistillRecipe
    from reasonkd.errors import ConfigError

    base = {"student": "s", "data": {"path": "t.jsonl"}, "stages": [{"name": "logic", "kind": "logic", "steps": 1}]}
    no_cache = from_dict(DistillRecipe, {**base, "teachers": [{"model": "a", "logit_cache": "c"}, {"model": "b"}]})
    with pytest.raises(ConfigError, match=r"stages\.0\.losses\.1: teachers: .*logit_cache"):
        no_cache.check_ready()
    missing = from_dict(
        DistillRecipe,
        {
            **base,
            "teachers": [
                {"model": "a", "logit_cache": str(tmp_path / "x")},
                {"model": "b", "logit_cache": str(tmp_path / "y")},
            ],
        },
    )
    with pytest.raises(ReasonkdError, match=r"teachers\.0\.logit_cache \(a\): .*not a finished logit cache"):
        open_fused_cache(missing, [], None)


def test_fused_cache_takes_the_other_tokenizers_row_at_the_aligned_position(two_caches, tiny_llama_dir, tiny_qwen_dir):
    from transformers import AutoTokenizer

    from reasonkd.distill.crosstok import PairEncoder

    root, examples, caches = two_caches
    s_tok, b_tok = AutoTokenizer.from_pretrained(tiny_llama_dir), AutoTokenizer.from_pretrained(tiny_qwen_dir)
    id_map = F.id_map_from(build_vocab_map(s_tok, b_tok, len(s_tok), len(b_tok)), len(b_tok))
    enc = PairEncoder(s_tok, b_tok, len(s_tok), len(b_tok), max_length=96)
    only_b = FusedLogitCache(
        [_Teacher("b", LogitCache(caches["b"]), enc, id_map)],
        [1.0],
        "static",
        5,
        s_tok,
        len(s_tok),
        {ex["id"]: ex for ex in examples},
        96,
    )
    ex = examples[3]
    got, raw = only_b.get(ex["id"]), LogitCache(caches["b"]).get(ex["id"])
    e = enc.encode(ex["prompt"], ex["trace"], id=ex["id"])
    checked = 0
    for j in range(got.topk_ids.shape[0]):
        t_pos = e.teacher_index[e.prompt_len - 1 + j]
        assert bool(got.row_mask[j]) == (t_pos >= 0)
        if t_pos < 0:
            continue
        row = t_pos - (raw.trace_start - 1)
        want = {
            int(id_map[t]): round(float(lp), 4)
            for t, lp in zip(raw.topk_ids[row], raw.topk_logprobs[row])
            if int(id_map[t]) >= 0
        }
        have = {
            int(i): round(float(lp), 4)
            for i, lp in zip(got.topk_ids[j], got.topk_logprobs[j])
            if math.isfinite(float(lp))
        }
        assert have == want
        checked += 1
    assert checked > 0.5 * got.topk_ids.shape[0]


def test_online_stage_with_another_tokenizer_then_fused_caches(two_caches, tiny_llama_dir, tiny_qwen_dir, tmp_path):
    """The first teacher (other tokenizer) runs the feature stage online; the logic stage reads both caches."""
    from tiny_models import build_tiny_model

    from reasonkd.distill.stages import run_recipe
    from reasonkd.utils.io import read_jsonl

    root, examples, caches = two_caches
    student = build_tiny_model(
        tmp_path / "student", arch="llama", tokenizer="a", hidden=64, layers=2, heads=4, kv_heads=2, seed=3
    )
    recipe = tmp_path / "mt.yaml"
    recipe.write_text(f"""\
student: {student}
teachers:
  - {{model: {tiny_qwen_dir}, logit_cache: {caches["b"]}}}
  - {{model: {tiny_llama_dir}, logit_cache: {caches["a"]}}}
fusion: {{weighting: confidence}}
data: {{path: {root / "traces.jsonl"}}}
output_dir: {tmp_path / "run"}
bf16_autocast: false
teacher_dtype: float32
max_length: 96
batch_size: 4
save_every: 0
stages:
  - {{name: feature, kind: feature, steps: 2, lr: 0.003, losses: [{{name: hidden_mse}}]}}
  - {{name: logic, kind: logic, steps: 2, lr: 0.003}}
""")
    run_recipe(recipe, progress=False)
    rows = read_jsonl(tmp_path / "run" / "stages" / "2-logic" / "metrics.jsonl")
    assert len(rows) == 2 and all(math.isfinite(r["terms"]["forward_kl"]) for r in rows)
    assert read_jsonl(tmp_path / "run" / "stages" / "1-feature" / "metrics.jsonl")[0]["terms"]["hidden_mse"] > 0
