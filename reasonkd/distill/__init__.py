"""Distillation: pure-tensor losses, stages, temperature schedules, trainer."""
