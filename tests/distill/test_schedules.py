"""Temperature and learning-rate schedules: endpoints, monotonicity, step milestones, validation."""

import math

import pytest

from reasonkd.distill.schedules import TemperatureSchedule
from reasonkd.distill.schedules import lr_factor, temperature_at
from reasonkd.errors import ConfigError


def temps(schedule, total):
    return [temperature_at(schedule, s, total) for s in range(total)]


def test_constant():
    assert temps(TemperatureSchedule("constant", 3.0), 5) == [3.0] * 5


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_linear_and_cosine_go_from_start_to_end_monotonically(kind):
    t = temps(TemperatureSchedule(kind, 5.0, 1.0), 11)
    assert t[0] == pytest.approx(5.0) and t[-1] == pytest.approx(1.0)
    assert all(a > b for a, b in zip(t, t[1:]))
    assert t[5] == pytest.approx(3.0)  # both pass the midpoint halfway


def test_linear_values_and_cosine_shape():
    lin = temps(TemperatureSchedule("linear", 5.0, 1.0), 5)
    assert lin == pytest.approx([5.0, 4.0, 3.0, 2.0, 1.0])
    cos = temps(TemperatureSchedule("cosine", 5.0, 1.0), 5)
    assert cos[1] == pytest.approx(1.0 + 4.0 * 0.5 * (1 + math.cos(math.pi / 4)))
    assert cos[1] > lin[1]  # cosine stays high longer (global knowledge first)


def test_increasing_schedule_and_single_step_stage():
    assert temps(TemperatureSchedule("linear", 1.0, 2.0), 3) == pytest.approx([1.0, 1.5, 2.0])
    assert temperature_at(TemperatureSchedule("linear", 5.0, 1.0), 0, 1) == pytest.approx(1.0)


def test_step_with_fraction_milestones_and_even_levels():
    s = TemperatureSchedule("step", 5.0, 1.0, milestones=[0.5])
    assert temps(s, 10) == [5.0] * 5 + [1.0] * 5
    s3 = TemperatureSchedule("step", 4.0, 1.0, milestones=[0.25, 0.5, 0.75])
    assert temps(s3, 8) == pytest.approx([4.0, 4.0, 3.0, 3.0, 2.0, 2.0, 1.0, 1.0])


def test_step_with_step_numbers_and_explicit_values():
    s = TemperatureSchedule("step", 5.0, milestones=[2, 4], values=[3.0, 1.5])
    assert temps(s, 6) == [5.0, 5.0, 3.0, 3.0, 1.5, 1.5]


@pytest.mark.parametrize(
    "kwargs, msg",
    [
        ({"kind": "exp"}, "kind must be"),
        ({"start": 0.0}, "must be > 0"),
        ({"kind": "step"}, "needs milestones"),
        ({"kind": "step", "milestones": [0.6, 0.3]}, "increasing"),
        ({"kind": "step", "milestones": [0.5], "values": [1.0, 2.0]}, "one temperature per milestone"),
    ],
)
def test_invalid_schedules_raise(kwargs, msg):
    with pytest.raises(ConfigError, match=msg):
        TemperatureSchedule(**kwargs)


def test_end_defaults_to_start():
    assert TemperatureSchedule("linear", 2.0).end == 2.0


def test_lr_warmup_then_cosine_to_min_ratio():
    f = [lr_factor(s, 12, warmup=2, kind="cosine", min_ratio=0.1) for s in range(12)]
    assert f[0] == pytest.approx(1 / 3) and f[1] == pytest.approx(2 / 3)
    assert f[2] == pytest.approx(1.0) and f[-1] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(f[2:], f[3:]))


def test_lr_linear_and_constant():
    assert [lr_factor(s, 5, kind="linear") for s in range(5)] == pytest.approx([1.0, 0.75, 0.5, 0.25, 0.0])
    assert [lr_factor(s, 5, warmup=1, kind="constant") for s in range(5)] == pytest.approx([0.5, 1, 1, 1, 1])
    with pytest.raises(ValueError):
        lr_factor(3, 5, kind="exp")


def test_a_schedule_can_be_given_by_name():
    from reasonkd.config import from_dict
    from reasonkd.distill.recipe import StageConfig
    from reasonkd.errors import ConfigError

    stage = from_dict(StageConfig, {"name": "output", "steps": 3, "temperature": "kd_anneal"})
    assert stage.temperature == TemperatureSchedule(kind="linear", start=5.0, end=1.0)
    with pytest.raises(ConfigError, match="temperature: unknown name 'hot'; known: kd_anneal"):
        from_dict(StageConfig, {"name": "output", "steps": 3, "temperature": "hot"})
