"""Evaluation: tasks (GSM8K, HumanEval, logic), code sandbox, measurements, report."""
