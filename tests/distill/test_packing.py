"""Sequence packing (reasonkd/distill/packing.py): rows, isolation between traces, per-token losses.

The student and teacher run in float64, once on padded rows (a row per trace) and once on packed rows;
every trace token's hidden state, CE and KL (online logits and cached top-k) must agree to 1e-10, keyed
by (example, position). A perturbation test shows no trace reads another one of its row.
"""

import pytest
import torch
from _tiny_distill import QUESTIONS

from reasonkd.config import from_dict
from reasonkd.distill import losses as L
from reasonkd.distill.data import collate, encode_all
from reasonkd.distill.forward import DistillStudent, teacher_forward, token_rows
from reasonkd.distill.packing import pack_collate, pack_rows, stage_packs
from reasonkd.distill.recipe import DistillRecipe, StageConfig
from reasonkd.models import load_model


def _examples(n=7):
    out = []
    for i in range(n):
        q, t = QUESTIONS[i % 2]
        a, b = 3 + i, 4 + 2 * i
        out.append(
            {
                "id": f"q{i}",
                "prompt": q.format(a=a, b=b),
                "trace": " ".join([t.format(a=a, b=b, s=a + b)] * (1 + i % 3)),
            }
        )
    return out


def test_pack_rows_places_every_item_once_within_the_length():
    lengths = [50, 10, 40, 30, 30, 90, 5]
    rows = pack_rows(lengths, 100)
    assert sorted(i for r in rows for i in r) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in r) <= 100 for r in rows)
    assert len(rows) == 3  # 255 tokens need 3 rows of 100
    assert pack_rows(lengths, 100) == rows  # deterministic
    assert pack_rows([120, 10], 100) == [[0], [1]]  # too long for a row: a row of its own


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    from tiny_models import build_tiny_model

    root = tmp_path_factory.mktemp("packing")
    models = {}
    for name, arch, hidden, layers, heads, seed in (
        ("teacher", "qwen2", 96, 3, 6, 1),
        ("student", "llama", 64, 2, 4, 2),
    ):
        path = build_tiny_model(
            root / name, arch=arch, tokenizer="a", hidden=hidden, layers=layers, heads=heads, kv_heads=2, seed=seed
        )
        model, tok = load_model(path, dtype="float32")
        models[name] = model.double().eval()
    return models["teacher"], models["student"], tok


class _Objective:  # what teacher_forward reads
    online_logits, teacher_tokens, hidden_pairs, attn_pairs, teacher_shared_only = True, False, [], [], False


def _keys(batch, mask, encoded, layout=None):
    """(example id, position in the example) of every True of mask (B, L); layout: pack_rows of a packed batch."""
    owner = {}
    for r, row in enumerate(layout or [[i] for i in range(len(encoded))]):
        start = 0
        for i in row:
            for p in range(len(encoded[i].input_ids)):
                owner[r, start + p] = (encoded[i].id, p)
            start += len(encoded[i].input_ids)
    return [owner[r, c] for r, c in mask.nonzero().tolist()]


def _per_token(batch, student, teacher, impl, encoded, layout=None):
    """{(id, position): (hidden, ce, kl to the online teacher)} of every trace row."""
    for m in (student, teacher):
        m.config._attn_implementation = impl
    rows = token_rows(batch)
    with torch.no_grad():
        s_out = DistillStudent(student)(
            batch["input_ids"], batch["attention_mask"], rows.mask, position_ids=batch.get("position_ids")
        )
        t_out = teacher_forward(teacher, batch, rows, _Objective())
    hidden = s_out["trace_hidden"]
    logits = student.get_output_embeddings()(hidden)
    ce = L.ce(logits, rows.targets)
    kl = L.forward_kl(L.logprobs(logits), L.logprobs(t_out["logits"]))
    return {k: (hidden[n], ce[n], kl[n]) for n, k in enumerate(_keys(batch, rows.mask, encoded, layout))}


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
def test_packed_and_padded_rows_give_the_same_per_token_losses(pair, impl):
    teacher, student, tok = pair
    encoded = encode_all(_examples(), tok, max_length=96)
    padded = collate(encoded, tok.pad_token_id)
    packed = pack_collate(encoded, tok.pad_token_id, pack_length=160)
    assert packed["input_ids"].shape[0] < padded["input_ids"].shape[0]  # fewer rows, fewer pad tokens
    assert int(packed["attention_mask"].sum()) == int(padded["attention_mask"].sum())
    layout = pack_rows([len(e.input_ids) for e in encoded], 160)
    a = _per_token(padded, student, teacher, impl, encoded)
    b = _per_token(packed, student, teacher, impl, encoded, layout)
    assert set(a) == set(b) and len(a) == int((padded["labels"] != -100).sum())  # one row per trace token
    for k in a:
        for x, y in zip(a[k], b[k]):
            torch.testing.assert_close(x, y, rtol=0, atol=1e-10)


def test_a_trace_never_reads_another_trace_of_its_row(pair):
    _, student, tok = pair
    student.config._attn_implementation = "sdpa"
    encoded = encode_all(_examples(3), tok, max_length=96)
    batch = pack_collate(encoded, tok.pad_token_id, pack_length=400)
    assert batch["input_ids"].shape[0] == 1  # all three in one row
    changed = dict(batch, input_ids=batch["input_ids"].clone())
    first = int((batch["position_ids"][0, 1:] == 0).nonzero()[0]) + 1  # where the second trace starts
    changed["input_ids"][0, :first] = (changed["input_ids"][0, :first] + 1) % student.config.vocab_size
    with torch.no_grad():  # use_cache=False, as in training: with a KV cache transformers ignores the packing
        h1, h2 = (
            student.get_decoder()(input_ids=ids, position_ids=batch["position_ids"], use_cache=False).last_hidden_state
            for ids in (batch["input_ids"], changed["input_ids"])
        )
    assert not torch.allclose(h1[0, :first], h2[0, :first])  # the first trace changed
    torch.testing.assert_close(h1[0, first:], h2[0, first:], rtol=0, atol=0)  # the others did not move


def test_cached_soft_targets_sit_at_each_traces_own_rows(pair, tmp_path):
    from reasonkd.models.logit_cache import LogitCache
    from reasonkd.models.logit_writer import write_logit_cache

    teacher, _, tok = pair
    examples = _examples()
    write_logit_cache(teacher, tok, examples, tmp_path / "cache", k=5, progress=False)
    cache = LogitCache(tmp_path / "cache")
    encoded = encode_all(examples, tok, max_length=96)
    layout = pack_rows([len(e.input_ids) for e in encoded], 160)
    found = []
    for batch, lay in (
        (collate(encoded, tok.pad_token_id, cache), None),
        (pack_collate(encoded, tok.pad_token_id, pack_length=160, cache=cache), layout),
    ):
        mask = token_rows(batch).mask
        assert bool((batch["soft_mask"] == mask).all())  # a soft target at exactly the trace rows
        found.append(
            {
                k: (batch["teacher_topk_ids"][r, c].tolist(), batch["teacher_topk_logprobs"][r, c].tolist())
                for k, (r, c) in zip(_keys(batch, mask, encoded, lay), mask.nonzero().tolist())
            }
        )
    assert found[0] == found[1] and len(found[0]) > 0


def test_stages_whose_terms_need_a_row_per_trace_run_padded():
    recipe = from_dict(DistillRecipe, {"student": "s", "data": {"path": "x", "packing": True}})
    assert stage_packs(recipe, StageConfig(name="o", kind="output", steps=1))
    assert stage_packs(recipe, StageConfig(name="l", kind="logic", steps=1))
    assert not stage_packs(recipe, StageConfig(name="f", kind="feature", steps=1))  # attention_kl
    off = from_dict(DistillRecipe, {"student": "s"})  # packing is off by default
    assert not stage_packs(off, StageConfig(name="o", kind="output", steps=1))


def test_a_run_saved_before_packing_and_compile_existed_still_resumes(tmp_path):
    import yaml

    from reasonkd.config import to_dict
    from reasonkd.distill.stages import _check_output_dir
    from reasonkd.errors import ReasonkdError

    recipe = from_dict(DistillRecipe, {"student": "s"})
    saved = to_dict(recipe)
    for key in ("compile", "compile_min_steps"):
        del saved[key]
    del saved["data"]["packing"], saved["data"]["pack_length"]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(saved))
    _check_output_dir(tmp_path, recipe, resume=True)  # the new keys at their defaults: the same recipe
    with pytest.raises(ReasonkdError, match="differs from the run .* in data"):
        _check_output_dir(tmp_path, from_dict(DistillRecipe, {"student": "s", "data": {"packing": True}}), True)
