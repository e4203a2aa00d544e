"""reasonkd: distil reasoning from a teacher LLM into a small student, and prove it worked.

Package map (one folder per stage of the workflow):
  utils/    atomic file writes, the code sandbox, hardware probing
  models/   load any causal LM (alias, folder, .gguf, hub id); shipped-model cache; generation engines
  data/     verified reasoning data: generators, augmentation, verifiers
  ocr/      problem images: OCR, import a folder of them as a dataset, render test images
  teacher/  teacher trace generation and the top-k logit cache
  distill/  losses (pure tensor functions), stages, schedules, trainer
  eval/     tasks, measurements, report
  export/   ONNX Runtime / OpenVINO export and benchmarking
  serve/    OpenAI-compatible HTTP server
  pipeline/ `reasonkd demo` and `reasonkd compare`: the steps above chained, resumable
  cli/      the `reasonkd` command (docs/architecture.md: the layers)
"""

__version__ = "0.1.0"
