"""Model loading: shipped aliases, local folders, GGUF files, hub ids.

See `reasonkd.models.loader` (load_model / load_tokenizer / resolve),
`reasonkd.models.registry` (aliases) and `reasonkd.models.cache` (the
assemble-once, convert-once cache under REASONKD_HOME).
"""

from reasonkd.models.loader import count_parameters, load_model, load_tokenizer, prepare_tokenizer, resolve
from reasonkd.models.registry import ALIASES, ModelSpec, get_spec

__all__ = [
    "ALIASES",
    "ModelSpec",
    "count_parameters",
    "get_spec",
    "load_model",
    "load_tokenizer",
    "prepare_tokenizer",
    "resolve",
]
