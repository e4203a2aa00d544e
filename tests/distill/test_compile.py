"""`compile` recipe keys (reasonkd/distill/compile.py): when a stage compiles, and that it trains the same."""

import pytest
import torch

from reasonkd.config import from_dict
from reasonkd.distill.compile import compile_student, should_compile
from reasonkd.distill.recipe import DistillRecipe
from reasonkd.errors import ConfigError


def test_auto_compiles_only_stages_long_enough_to_pay():
    assert should_compile("auto", steps=500, min_steps=200)
    assert not should_compile("auto", steps=100, min_steps=200)
    assert not should_compile("auto", steps=10_000, min_steps=0)  # 0 = never
    assert should_compile(True, steps=1, min_steps=0) and not should_compile(False, steps=10_000, min_steps=1)


def test_bad_compile_keys_name_the_key():
    with pytest.raises(ConfigError, match="compile must be true, false or auto"):
        from_dict(DistillRecipe, {"student": "s", "compile": "yes"})
    with pytest.raises(ConfigError, match="compile_min_steps"):
        from_dict(DistillRecipe, {"student": "s", "compile_min_steps": -1})


@pytest.mark.slow  # inductor compiles C++ for a few minutes on a busy 2-core CPU
def test_compiled_layers_give_the_eager_loss_and_gradients(tiny_llama_dir):
    from reasonkd.models import load_model

    outs = []
    for compiled in (False, True):
        model, _ = load_model(tiny_llama_dir, dtype="float32")
        assert compile_student(model, compiled, steps=1, min_steps=0) == compiled
        ids = torch.randint(0, model.config.vocab_size, (2, 24), generator=torch.Generator().manual_seed(0))
        loss = model(input_ids=ids, labels=ids, use_cache=False).loss
        loss.backward()
        outs.append(
            (
                loss.detach(),
                model.get_input_embeddings().weight.grad.clone(),
                sorted(k for k, _ in model.named_parameters()),
            )
        )
    torch.testing.assert_close(outs[0][0], outs[1][0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(outs[0][1], outs[1][1], rtol=1e-4, atol=1e-6)
    assert outs[0][2] == outs[1][2]  # parameter names (state dicts, checkpoints) unchanged
