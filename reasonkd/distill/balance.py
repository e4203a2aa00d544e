"""Optional balancing of a stage's loss terms by running magnitude.

balancer = LossBalancer(recipe.balance_losses)
scales = balancer.scales({name: float(value), ...})   # read by objective.Objective.loss
balancer.update(...)                              # after the step; state_dict() goes in checkpoints
"""

from __future__ import annotations

import math


class LossBalancer:
    """Optional automatic balancing of loss terms by running magnitude (recipe `balance_losses`).

    For each term i keep m_i, a bias-corrected exponential moving average (beta 0.9) of |term_i|
    (averaged over processes). The stage loss is sum_i w_i * (G / m_i) * term_i with G the geometric
    mean of all m_i: every term then contributes about w_i * G, so a term that is naturally 100x
    smaller (a hidden-state MSE beside a KL at T = 5) is not silently ignored, and the weights say
    the intended relative strength. The scales are constants for autograd. Disabled: scale 1.
    """

    def __init__(self, enabled: bool, beta: float = 0.9):
        self.enabled, self.beta = enabled, beta
        self.ema: dict[str, float] = {}
        self.t = 0

    def scales(self, current: dict[str, float]) -> dict[str, float]:
        if not self.enabled:
            return {k: 1.0 for k in current}
        mags = {k: max(abs(v), 1e-8) for k, v in current.items()}
        if self.t > 0:
            corr = 1.0 - self.beta**self.t
            mags = {k: max(self.ema.get(k, mags[k] * corr) / corr, 1e-8) for k in current}
        g = math.exp(sum(math.log(m) for m in mags.values()) / max(len(mags), 1))
        return {k: g / m for k, m in mags.items()}

    def update(self, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        self.t += 1
        for k, v in values.items():
            self.ema[k] = self.beta * self.ema.get(k, 0.0) + (1 - self.beta) * abs(v)

    def state_dict(self) -> dict:
        return {"ema": dict(self.ema), "t": self.t}

    def load_state_dict(self, state: dict) -> None:
        self.ema, self.t = dict(state.get("ema", {})), int(state.get("t", 0))
