"""Top-k logit cache: round trip against a direct teacher forward, resumable writes, refusal of a
student with another tokenizer, and soft targets placed at the right batch positions."""

import json

import pytest
import torch

from _tiny_distill import one_thread, write_traces
from reasonkd.distill.data import collate, encode_all
from reasonkd.models.encoding import encode_example
from reasonkd.models.logit_cache import LogitCache
from reasonkd.models.logit_writer import write_logit_cache
from reasonkd.teacher.traces import load_traces
from reasonkd.errors import ReasonkdError

_one_thread = pytest.fixture(scope="module", autouse=True)(one_thread)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    from reasonkd.models import load_model
    from tiny_models import build_tiny_model

    path = build_tiny_model(
        tmp_path_factory.mktemp("cache_teacher"),
        arch="llama",
        tokenizer="a",
        hidden=96,
        layers=3,
        heads=6,
        kv_heads=2,
        seed=1,
    )
    return load_model(str(path))


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    rows = load_traces(write_traces(tmp_path_factory.mktemp("cache_data") / "traces.jsonl", n=10))
    return [dict(r, id=f"{r['id']}#0") for r in rows]  # as `reasonkd teacher logits` names them


def test_round_trip_matches_a_direct_forward(teacher, examples, tmp_path):
    model, tok = teacher
    out = write_logit_cache(
        model, tok, examples, tmp_path / "c", k=5, batch_size=3, shard_size=4, dtype="float32", progress=False
    )
    cache = LogitCache(out)
    meta = json.loads((out / "meta.json").read_text())
    assert (meta["k"], meta["temperature"], meta["dtype"], meta["n_examples"]) == (5, 1.0, "float32", 10)
    assert len(meta["shards"]) == 3 and len(cache) == 10
    for ex in examples[:4]:
        ids, start = encode_example(tok, ex["prompt"], ex["trace"], ex.get("system"))
        with torch.no_grad():
            logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), -1)
        top = logp[start - 1 : len(ids) - 1].topk(5)
        entry = cache.get(ex["id"])
        assert entry.token_ids.dtype == torch.int32 and entry.topk_ids.dtype == torch.int32
        assert entry.token_ids.tolist() == ids and entry.trace_start == start
        assert entry.topk_ids.shape == (len(ids) - start, 5)
        assert torch.equal(entry.topk_ids.long(), top.indices)
        assert torch.allclose(entry.topk_logprobs, top.values, atol=1e-5)
    assert cache.get("q1").trace_start == cache.get("q1#0").trace_start  # traces without sample_idx are #0
    assert cache.get("nope", default=None) is None
    with pytest.raises(ReasonkdError, match="no entry"):
        cache.get("nope")


def test_float16_default_and_resumed_write(teacher, examples, tmp_path):
    model, tok = teacher
    write_logit_cache(model, tok, examples[:4], tmp_path / "c", k=3, shard_size=2, progress=False)
    first = sorted(p.name for p in (tmp_path / "c").glob("shard-*"))
    (tmp_path / "c" / "meta.json").unlink()  # as if killed before finishing
    with pytest.raises(ReasonkdError, match="not a finished logit cache"):
        LogitCache(tmp_path / "c")
    write_logit_cache(model, tok, examples, tmp_path / "c", k=3, shard_size=2, progress=False)
    cache = LogitCache(tmp_path / "c")
    assert len(cache) == 10 and cache.get(examples[-1]["id"]).topk_logprobs.dtype == torch.float16
    assert sorted(p.name for p in (tmp_path / "c").glob("shard-*"))[: len(first)] == first  # kept, not redone
    with pytest.raises(ReasonkdError, match="other k"):
        write_logit_cache(model, tok, examples, tmp_path / "c", k=4, progress=False)


def test_student_with_another_tokenizer_is_refused(teacher, examples, tmp_path):
    from tiny_models import build_tiny_tokenizer

    model, tok = teacher
    cache = LogitCache(write_logit_cache(model, tok, examples[:2], tmp_path / "c", k=3, progress=False))
    cache.check_tokenizer(build_tiny_tokenizer("a"))  # same vocabulary: accepted
    with pytest.raises(ReasonkdError, match="tokenizer differs"):
        cache.check_tokenizer(build_tiny_tokenizer("b"))


def test_collate_places_soft_targets_at_prediction_positions(teacher, examples, tmp_path):
    model, tok = teacher
    cache = LogitCache(write_logit_cache(model, tok, examples[:3], tmp_path / "c", k=4, progress=False))
    enc = encode_all(examples[:4], tok, max_length=70)  # the 4th is not cached; some traces are cut
    batch = collate(enc, tok.pad_token_id, cache)
    assert batch["teacher_topk_ids"].shape == (*batch["input_ids"].shape, 4)
    for r, e in enumerate(enc):
        soft = batch["soft_mask"][r]
        if r == 3:
            assert not soft.any()
            continue
        entry = cache.get(e.id)
        n = len(e.input_ids) - e.prompt_len
        assert soft.nonzero().squeeze(1).tolist() == list(range(e.prompt_len - 1, e.prompt_len - 1 + n))
        assert torch.equal(batch["teacher_topk_ids"][r, e.prompt_len - 1], entry.topk_ids[0])
        # position p predicts label p + 1: the cached row's best guess is scored against that token
        assert batch["labels"][r, e.prompt_len] == entry.token_ids[entry.trace_start]
