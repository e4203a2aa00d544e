"""reasonkd: distil reasoning from a teacher LLM into a small student, and prove it worked.

Package map (one folder per stage of the workflow):
  models/   load any causal LM (alias, folder, .gguf, hub id); shipped-model cache
  data/     verified reasoning data: generators, augmentation, verifiers
  teacher/  teacher trace generation and the top-k logit cache
  distill/  losses (pure tensor functions), stages, schedules, trainer
  eval/     tasks, code sandbox, measurements, report
  export/   ONNX Runtime / OpenVINO export and benchmarking
  serve/    OpenAI-compatible HTTP server
  cli/      the `reasonkd` command
"""

__version__ = "0.1.0"
