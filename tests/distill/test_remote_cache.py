"""A remote teacher's token-string cache (reasonkd.teacher.remote) reads, for a student of another tokenizer,
like the id cache of the same teacher: the same student-space top-k at every character-aligned row."""

from types import SimpleNamespace

import torch

from reasonkd.distill.align import normalized_vocab
from reasonkd.distill.fused_cache import one_teacher_cache
from reasonkd.models import load_model, load_tokenizer
from reasonkd.models.logit_cache import LogitCache
from reasonkd.models.logit_writer import open_cache_dir, write_logit_cache, write_scored

TRACES = ["2 + 3 = 5. The answer is 5.", "Cows have 4 legs: 12 legs. Hens have 2 each, 8. Total 20.", "Blue, é ü."]


def _recipe(student, teacher, cache):
    return SimpleNamespace(
        student=str(student),
        teacher=str(teacher),
        max_length=512,
        data=SimpleNamespace(logit_cache=str(cache)),
        fusion=SimpleNamespace(k=5),
    )


def test_string_cache_equals_id_cache_across_tokenizers(tiny_qwen_dir, tiny_llama_dir, tmp_path):
    model, t_tok = load_model(str(tiny_qwen_dir), dtype="float32")
    examples = [{"id": f"e{i}", "prompt": f"question {i}?", "trace": t, "system": None} for i, t in enumerate(TRACES)]
    ids_cache = LogitCache(
        write_logit_cache(model, t_tok, examples, tmp_path / "ids", k=5, dtype="float32", progress=False)
    )
    # the same rows as an endpoint of unknown tokenizer sends them: token strings of the trace, no prompt
    vocab = normalized_vocab(t_tok)
    settings = {
        "teacher": "remote",
        "tokenizer_hash": "strings",
        "k": 5,
        "dtype": "float32",
        "max_length": None,
        "tokens": "strings",
    }
    open_cache_dir(tmp_path / "str", settings)
    records = []
    for ex in examples:
        e = ids_cache.get(ex["id"])
        trace_ids = e.token_ids[e.trace_start :].tolist()[:-1]  # no end-of-turn row: an API stops before it
        records.append(
            {
                "id": ex["id"],
                "trace_start": 0,
                "token_strings": [vocab[i] for i in trace_ids],
                "topk_strings": [[vocab[int(i)] for i in row] for row in e.topk_ids[: len(trace_ids)]],
                "topk_logprobs": e.topk_logprobs[: len(trace_ids)],
            }
        )
    write_scored(
        tmp_path / "str",
        settings,
        [(r["id"], None, None) for r in records],
        lambda b: [next(r for r in records if r["id"] == x[0]) for x in b],
        0,
        progress=False,
    )
    s_tok = load_tokenizer(str(tiny_llama_dir))
    by_ids = one_teacher_cache(_recipe(tiny_llama_dir, tiny_qwen_dir, tmp_path / "ids"), examples, s_tok)
    by_str = one_teacher_cache(_recipe(tiny_llama_dir, tiny_qwen_dir, tmp_path / "str"), examples, s_tok)
    assert LogitCache(tmp_path / "str").by_strings
    compared = 0
    for ex in examples:
        a, b = by_ids.get(ex["id"]), by_str.get(ex["id"])
        assert a.token_ids.tolist() == b.token_ids.tolist()
        assert (b.row_mask <= a.row_mask).all()  # the string cache lacks the end-of-turn row only
        assert a.row_mask.sum() - b.row_mask.sum() <= 2
        both = a.row_mask & b.row_mask
        assert torch.equal(a.topk_ids[both], b.topk_ids[both])
        assert torch.allclose(a.topk_logprobs[both], b.topk_logprobs[both])
        compared += int(both.sum())
    assert compared >= 10
