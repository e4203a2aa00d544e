"""Load any causal LM: a built-in alias, a local folder, a .gguf file, or a hub id.

    from reasonkd.models import load_model
    model, tok = load_model("smollm2-135m")                 # shipped alias
    model, tok = load_model("/path/to/checkpoint")          # save_pretrained folder
    model, tok = load_model("/path/to/model.Q4_K.gguf")     # GGUF (dequantized)
    model, tok = load_model("Qwen/Qwen2-7B-Instruct")       # hub id (needs network)

Hub ids fail fast (a few seconds) when the hub cannot be reached, with a
message that says how to pass a local folder instead; HF_HUB_OFFLINE=1 makes
them use only the local Hugging Face cache.

Other folder formats plug in with `register_folder_loader(name, detect, load)`:
reasonkd.export registers its ONNX / OpenVINO export folders that way when it
is imported (the `reasonkd` command imports it), so this layer never imports
the higher one.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from reasonkd.errors import ReasonkdError
from reasonkd.models import cache
from reasonkd.models.registry import ALIASES, get_spec
from reasonkd.utils.hardware import resolve_dtype

log = logging.getLogger(__name__)
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
HUB_HOST = "huggingface.co"
EXPORT_MANIFEST = "reasonkd_export.json"
"""The file that marks a reasonkd export folder (reasonkd.export.manifest writes it)."""


@dataclass
class FolderLoader:
    detect: Callable[[Path], str | None]
    """folder -> its kind (e.g. 'onnx') if this loader reads it, else None; must not raise."""
    load: Callable[..., tuple]
    """(path, device=...) -> (model, tokenizer)."""


FOLDER_LOADERS: dict[str, FolderLoader] = {}
"""Loaders of folder formats other than save_pretrained's, by name; see register_folder_loader."""


def register_folder_loader(name: str, detect: Callable[[Path], str | None], load: Callable[..., tuple]) -> None:
    """Let resolve / load_model take the folders `detect` recognizes, loading them with `load`."""
    FOLDER_LOADERS[name] = FolderLoader(detect, load)


def _folder_kind(p: Path) -> tuple[str, FolderLoader] | None:
    for loader in FOLDER_LOADERS.values():
        kind = loader.detect(p)
        if kind:
            return kind, loader
    if (p / EXPORT_MANIFEST).is_file():
        raise ReasonkdError(
            f"{p} is a reasonkd export folder; `import reasonkd.export` before loading it (the reasonkd command does)"
        )
    return None


@dataclass
class Resolved:
    kind: str
    """alias | folder | gguf | hub, or a registered folder kind: onnx | openvino (see reasonkd.export)"""
    path: str
    """folder to hand to from_pretrained (or the hub id)"""
    gguf_file: str | None = None
    alias: str | None = None
    loader: FolderLoader | None = None
    """The registered loader of a folder of another format (see register_folder_loader)."""


def resolve(name_or_path: str, pull: bool = False) -> Resolved:
    """Work out what `name_or_path` refers to (building the alias cache if needed)."""
    name = str(name_or_path)
    spec = get_spec(name)
    if spec is not None:
        return Resolved("alias", str(cache.ensure_cached(spec, pull=pull)), alias=spec.alias)
    p = Path(name).expanduser()
    if p.suffix == ".gguf":
        if not p.is_file():
            raise ReasonkdError(f"GGUF file not found: {p}")
        return Resolved("gguf", str(p.parent), gguf_file=p.name)
    if p.is_dir():
        found = _folder_kind(p)
        if found:
            return Resolved(found[0], str(p), loader=found[1])
        if not (p / "config.json").is_file():
            raise ReasonkdError(
                f"{p} is not a model folder (no config.json); pass a folder written by save_pretrained, "
                f"a .gguf file, or one of the aliases: {', '.join(ALIASES)}"
            )
        return Resolved("folder", str(p))
    if HUB_ID.match(name) and not name.startswith((".", "/")):
        _check_hub_reachable(name)
        return Resolved("hub", name)
    raise ReasonkdError(
        f"unknown model '{name}': not an alias ({', '.join(ALIASES)}), not an existing folder or .gguf file, "
        f"and not a hub id of the form org/name"
    )


def _check_hub_reachable(hub_id: str, timeout: float = 3.0) -> None:
    hint = (
        f"cannot download '{hub_id}': the Hugging Face hub is not reachable from this machine. "
        f"Download it elsewhere (`huggingface-cli download {hub_id} --local-dir DIR`), copy DIR here and "
        f"pass --model DIR, or use a shipped alias ({', '.join(ALIASES)})."
    )
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        try:
            from huggingface_hub import snapshot_download  # lazy: only on this offline path

            snapshot_download(hub_id, local_files_only=True)
            return
        except Exception:
            raise ReasonkdError(hint + " (HF_HUB_OFFLINE is set and it is not in the local HF cache)") from None
    endpoint = os.environ.get("HF_ENDPOINT", f"https://{HUB_HOST}")
    host = re.sub(r"^https?://", "", endpoint).split("/")[0].split(":")[0]
    try:
        socket.getaddrinfo(host, 443)
        with socket.create_connection((host, 443), timeout=timeout):
            pass
    except OSError:
        # maybe the user has it in the local HF cache already
        try:
            from huggingface_hub import snapshot_download  # lazy: only on this offline path

            snapshot_download(hub_id, local_files_only=True)
            os.environ["HF_HUB_OFFLINE"] = "1"
        except Exception:
            raise ReasonkdError(hint) from None


def _dtype(dtype, device: str = "cpu"):
    """A torch dtype; "auto" -> what runs fastest on `device` here (reasonkd.utils.hardware)."""
    import torch  # lazy, as all torch / transformers imports here: `reasonkd --help` starts without them

    if isinstance(dtype, torch.dtype):
        return dtype
    return resolve_dtype(dtype, device)[0]


def load_tokenizer(name_or_path: str, pull: bool = False):
    r = resolve(name_or_path, pull=pull)
    return tokenizer_from(r.path, r.gguf_file)


MISTRAL_TYPES = ("mistral", "mistral3", "voxtral", "ministral", "pixtral")


def tokenizer_from(path: str, gguf_file: str | None = None):
    """The tokenizer in `path` (a folder, hub id, or GGUF file's folder), padded for batched generation.

    transformers 4.57.3-4.57.x warns "incorrect regex pattern ... fix_mistral_regex" for every local
    large-vocabulary tokenizer saved by 4.57.3+ (a false positive for Qwen/Llama/Gemma,
    huggingface/transformers#44031, fixed upstream in #45444); for a local folder whose config is not a
    Mistral family we say `fix_mistral_regex=False` (what transformers does anyway), which silences it.
    """
    from transformers import AutoTokenizer  # lazy: start-up time

    kw = {"gguf_file": gguf_file} if gguf_file else {}
    config = Path(path) / "config.json"
    if not gguf_file and config.is_file():
        import transformers
        from packaging.version import Version

        model_type = json.loads(config.read_text()).get("model_type")
        if Version("4.57.3") <= Version(transformers.__version__) < Version("5") and model_type not in MISTRAL_TYPES:
            kw["fix_mistral_regex"] = False
    return prepare_tokenizer(AutoTokenizer.from_pretrained(path, **kw))


def prepare_tokenizer(tok):
    """Pad token and left padding, so batched generation works for every family."""
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok


def load_model(
    name_or_path: str,
    *,
    dtype="float32",
    device: str = "cpu",
    pull: bool = False,
    attn_implementation: str | None = None,
):
    """Return (model, tokenizer) in eval mode. `dtype`: auto (fastest here) | float32 | bfloat16 | float16."""
    from transformers import AutoModelForCausalLM  # lazy: start-up time

    r = resolve(name_or_path, pull=pull)
    if r.loader is not None:  # e.g. an export folder: its precision is fixed, `dtype` does not apply
        model, tok = r.loader.load(r.path, device=device)
        model.reasonkd_source = r
        return model, tok
    kw = {"gguf_file": r.gguf_file} if r.gguf_file else {}
    if attn_implementation:
        kw["attn_implementation"] = attn_implementation
    tok = tokenizer_from(r.path, r.gguf_file)
    model = AutoModelForCausalLM.from_pretrained(r.path, dtype=_dtype(dtype, device), **kw)
    if r.gguf_file:
        cache.clear_gguf_marks(model)
    model.to(device)
    model.eval()
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tok.pad_token_id
    model.reasonkd_source = r  # type: ignore[attr-defined]
    return model, tok


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())
