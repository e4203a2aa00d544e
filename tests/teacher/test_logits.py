"""`reasonkd teacher logits`: accepted traces -> top-k cache (reasonkd.models.logit_cache), tokenizer-checked."""

import pytest

from reasonkd.errors import ReasonkdError
from reasonkd.teacher.generate import GenerateSettings, generate_traces


def test_logits_command_writes_a_checked_cache(items_file, tmp_path, scripted, tiny_llama_dir, tiny_qwen_dir, capsys):
    import torch

    from reasonkd.cli import main
    from reasonkd.models.encoding import encode_example
    from reasonkd.models.logit_cache import LogitCache
    from reasonkd.models import load_model, load_tokenizer
    from reasonkd.utils.io import read_jsonl

    traces = tmp_path / "traces"
    generate_traces(
        GenerateSettings(teacher="scripted", data=str(items_file), out=str(traces), progress=False), backend=scripted()
    )
    out = tmp_path / "logits"
    assert (
        main(
            [
                "teacher",
                "logits",
                "--teacher",
                str(tiny_llama_dir),
                "--traces",
                str(traces),
                "--out",
                str(out),
                "--k",
                "5",
                "--dtype",
                "float32",
            ]
        )
        == 0
    )
    assert "top-5 logit cache of 4 traces" in capsys.readouterr().out
    cache = LogitCache(out)
    rows = read_jsonl(traces / "traces.jsonl")
    assert len(cache) == len(rows) == 4
    model, tok = load_model(str(tiny_llama_dir))
    cache.check_tokenizer(tok)  # the teacher's own tokenizer passes
    with pytest.raises(ReasonkdError, match="tokenizer"):
        cache.check_tokenizer(load_tokenizer(str(tiny_qwen_dir)))  # another tokenizer is refused
    r = rows[0]
    entry = cache.get(f"{r['id']}#{r['sample_idx']}")
    ids, start = encode_example(tok, r["prompt"], r["trace"], r.get("system"))
    assert entry.topk_ids.shape == (len(ids) - start, 5) and entry.trace_start == start
    with torch.inference_mode():
        logp = torch.log_softmax(model(torch.tensor([ids])).logits[0, start - 1].float(), -1)
    top = torch.topk(logp, 5)
    assert entry.topk_ids[0].tolist() == top.indices.tolist()
    assert torch.allclose(entry.topk_logprobs[0].float(), top.values, atol=1e-2)
