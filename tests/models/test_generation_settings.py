"""One generation-settings type: the teacher, on-policy rollouts, compare's evaluations and the server extend
models.generation.Sampling / GenerationJob with only their own fields and defaults, and share its checks."""

import dataclasses

import pytest

from reasonkd.config import config_help, from_dict
from reasonkd.distill.recipe import RolloutConfig
from reasonkd.errors import ConfigError
from reasonkd.models.generation import GenerationJob, Sampling
from reasonkd.pipeline.compare_config import EvalSets
from reasonkd.serve.engine import GenParams
from reasonkd.teacher.generate import GenerateSettings

SHARED = {"temperature", "top_p", "max_new_tokens"}
JOB = SHARED | {"data", "split", "domain", "template", "batch_size", "dtype", "engine"}


def _names(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def test_every_caller_extends_the_one_type_with_its_own_defaults():
    assert issubclass(RolloutConfig, Sampling) and issubclass(GenParams, Sampling)
    assert issubclass(GenerateSettings, GenerationJob) and issubclass(EvalSets, GenerationJob)
    assert SHARED <= _names(RolloutConfig) and SHARED <= _names(GenParams)
    assert JOB <= _names(GenerateSettings) and JOB <= _names(EvalSets)
    rollout, params = RolloutConfig(), GenParams()
    teacher = GenerateSettings(teacher="t", data="d", out="o")
    evals = EvalSets(data="d")
    assert (rollout.temperature, rollout.max_new_tokens) == (1.0, 128)
    assert (params.temperature, params.max_new_tokens) == (1.0, 16)  # OpenAI's defaults
    assert (teacher.temperature, teacher.max_new_tokens, teacher.split) == (0.0, 384, "train")
    assert (evals.temperature, evals.max_new_tokens, evals.split, evals.dtype) == (0.0, 200, "val", "float32")
    assert teacher.sampling() == Sampling(temperature=0.0, top_p=1.0, max_new_tokens=384)


@pytest.mark.parametrize(
    "cls,extra",
    [(RolloutConfig, {}), (EvalSets, {"data": "d"}), (GenerateSettings, {"teacher": "t", "data": "d", "out": "o"})],
)
@pytest.mark.parametrize("bad", [{"top_p": 0.0}, {"temperature": -1.0}, {"max_new_tokens": 0}])
def test_the_shared_check_names_the_bad_value(cls, extra, bad):
    key, value = next(iter(bad.items()))
    with pytest.raises(ConfigError, match=f"{key}={value}"):
        from_dict(cls, {**extra, **bad})
    with pytest.raises(ConfigError, match=f"{key}={value}"):
        GenParams(**bad)


def test_help_shows_the_shared_fields_with_their_docs():
    text = config_help(RolloutConfig)
    assert "temperature = 1.0\n      Sampling temperature (0 = greedy)." in text
    assert "fraction = 1.0" in text
