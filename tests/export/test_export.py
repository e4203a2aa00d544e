"""Export to ONNX / OpenVINO (fp32, INT8): manifest, parity, loading through load_model, eval/serve reuse."""

import json

import pytest
import torch

from reasonkd.errors import ReasonkdError
from reasonkd.export.manifest import MANIFEST
from reasonkd.models import count_parameters, load_model, resolve
from reasonkd.models.generation import apply_chat, generate_batch


@pytest.mark.parametrize(
    "name,fmt,model_file",
    [
        ("onnx", "onnx", "model.onnx"),
        ("openvino", "openvino", "openvino_model.xml"),
        ("openvino-int8", "openvino", "openvino_model.bin"),
    ],
)
def test_export_writes_folder_and_manifest(exports, name, fmt, model_file):
    folder, manifest = exports[name]
    on_disk = json.loads((folder / MANIFEST).read_text())
    assert on_disk == json.loads(json.dumps(manifest))
    assert on_disk["format"] == fmt and on_disk["int8"] == name.endswith("int8")
    assert on_disk["task"] == "text-generation-with-past"
    assert on_disk["files"][model_file]["size"] == (folder / model_file).stat().st_size > 0
    assert "tokenizer.json" in on_disk["files"] and on_disk["versions"]["transformers"]
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no temp folder left behind
    assert resolve(str(folder)).kind == fmt


@pytest.mark.parametrize("name", ["onnx", "openvino"])
def test_fp32_parity_tokens_identical(exports, name):
    parity = exports[name][1]["parity"]
    assert parity["status"] == "passed"
    assert parity["tokens"]["identical"] and parity["tokens"]["identical_prompts"] == 4


def test_int8_is_smaller_and_measured(exports):
    int8, fp32 = exports["openvino-int8"][1], exports["openvino"][1]
    assert int8["files"]["openvino_model.bin"]["size"] < 0.5 * fp32["files"]["openvino_model.bin"]["size"]
    acc = int8["parity"]["accuracy"]
    assert int8["parity"]["status"] == "measured" and acc["n"] == 4
    assert acc["drop_points"] == pytest.approx(100 * (acc["torch_fp32_accuracy"] - acc["int8_accuracy"]))
    lo, hi = acc["drop_ci95_points"]
    assert (
        lo <= acc["drop_points"] <= hi
        and acc["same_verdict"] + acc["fp32_only_correct"] + acc["int8_only_correct"] == acc["n"]
    )


@pytest.mark.parametrize("name", ["onnx", "openvino"])
def test_load_model_on_export_matches_torch_batched(exports, varied_llama_dir, name):
    """generate_batch (left padding, batches of 3) gives PyTorch's texts through load_model(export folder)."""
    ref, tok = load_model(str(varied_llama_dir))
    model, etok = load_model(str(exports[name][0]))
    assert count_parameters(model) == count_parameters(ref)
    prompts = [apply_chat(tok, q) for q in ("how many legs", "a farmer has 12 chickens and 3 rabbits", "the answer")]
    want = generate_batch(ref, tok, prompts, max_new_tokens=10, batch_size=3, progress=False)
    got = generate_batch(model, etok, prompts, max_new_tokens=10, batch_size=3, progress=False)
    assert [o.text for o in got] == [o.text for o in want]


def test_parity_check_fails_loudly_on_a_different_model(exports, varied_llama_dir):
    from reasonkd.export.build import check

    ref, _ = load_model(str(varied_llama_dir))
    with torch.no_grad():
        ref.model.layers[0].mlp.down_proj.weight.mul_(-3.0)
    with pytest.raises(ReasonkdError, match="parity check FAILED"):
        check(ref, exports["onnx"][0], int8=False)


def test_failed_parity_writes_nothing(varied_llama_dir, tmp_path, monkeypatch):
    from reasonkd.export import parity
    from reasonkd.export.build import export_model

    monkeypatch.setattr(
        parity,
        "token_parity",
        lambda *a, **k: {
            "prompts": 4,
            "new_tokens": 24,
            "identical_prompts": 3,
            "identical": False,
            "first_mismatch": {"prompt": 1, "position": 5, "torch": "a", "exported": "b"},
        },
    )
    with pytest.raises(ReasonkdError, match="prompt 1 at new token 5"):
        export_model(str(varied_llama_dir), "onnx", tmp_path / "out")
    assert [p for p in tmp_path.iterdir() if p.name != "reasonkd_home"] == []  # home: the pinned hardware figures


def test_refuses_to_overwrite_a_foreign_folder(varied_llama_dir, tmp_path):
    from reasonkd.export.build import export_model

    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(ReasonkdError, match="not a reasonkd export folder"):
        export_model(str(varied_llama_dir), "onnx", tmp_path)
    with pytest.raises(ReasonkdError, match="--int8 is supported with --format openvino"):
        export_model(str(varied_llama_dir), "onnx", tmp_path / "x", int8=True)
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_cli_export_qwen_onnx(varied_qwen_dir, tmp_path, capsys):
    from reasonkd.cli import main

    out = tmp_path / "qwen-onnx"
    assert main(["export", "--model", str(varied_qwen_dir), "--format", "onnx", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "parity: passed; greedy tokens identical to PyTorch on 4/4 prompts" in printed
    assert "model.onnx" in printed and (out / MANIFEST).is_file()


def test_eval_and_serve_take_an_export_folder(exports, varied_llama_dir, tmp_path):
    from reasonkd.eval.runner import evaluate_model
    from reasonkd.serve.engine import Engine, GenParams

    data = tmp_path / "gsm.jsonl"
    data.write_text('{"question": "2 + 3 = ?", "answer": "#### 5"}\n{"question": "4 * 2 = ?", "answer": "#### 8"}\n')
    folder = str(exports["openvino-int8"][0])
    res = evaluate_model(
        folder,
        ["gsm8k"],
        data=str(data),
        max_new_tokens=6,
        latency_problems=1,
        latency_tokens=4,
        cases=False,
        progress=False,
    )
    assert res["tasks"]["gsm8k"]["metrics"]["n"] == 2 and res["latency"]["problems"] == 1
    ref, tok = load_model(str(varied_llama_dir))
    msgs, params = [{"role": "user", "content": "how many legs"}], GenParams(max_new_tokens=8, temperature=0)
    want = Engine(ref, tok).complete(Engine(ref, tok).chat_ids(msgs), params)[0]["text"]
    for name in ("onnx", "openvino"):  # the serve decoding loop calls forward with past_key_values itself
        model, etok = load_model(str(exports[name][0]))
        engine = Engine(model, etok)
        assert engine.complete(engine.chat_ids(msgs), params)[0]["text"] == want


def test_accuracy_check_uses_the_given_prompt_template(tiny_llama_dir, tmp_path, monkeypatch):
    """`reasonkd export --template FILE`: the INT8 accuracy check prompts like the student was trained."""
    from reasonkd.export import parity
    from reasonkd.models import load_model

    (tmp_path / "prompt.yaml").write_text(
        'system: null\nmath: "Q: {question}\\nSAY-IT-MY-WAY"\ndefault: "Q: {question}\\nSAY-IT-MY-WAY"\n'
    )
    seen = []
    real = parity.generate_batch

    def spy(model, tok, prompts, **kw):
        seen.extend(prompts)
        return real(model, tok, prompts, **kw)

    monkeypatch.setattr(parity, "generate_batch", spy)
    model, tok = load_model(str(tiny_llama_dir))
    examples = parity.held_out_examples(limit=2)
    out = parity.math_accuracy(model, tok, examples, max_new_tokens=2, template=str(tmp_path / "prompt.yaml"))
    assert out["n"] == 2 and len(seen) == 2
    assert all("SAY-IT-MY-WAY" in p and examples[i]["question"] in p for i, p in enumerate(seen))
    seen.clear()
    parity.math_accuracy(model, tok, examples, max_new_tokens=2)  # default: the gsm8k task's own prompt
    assert not any("SAY-IT-MY-WAY" in p for p in seen)
