"""YAML recipes over documented dataclasses, with dotted CLI overrides.

Every configurable part of reasonkd is a dataclass whose fields carry a
docstring right below them (litgpt style); `config_help(cls)` turns those into
help text. A recipe is YAML whose keys mirror the dataclass fields:

    cfg = load_config(DistillRecipe, "recipes/distill/default.yaml", ["stages.2.temperature.start=2.0"])

Rules:
- unknown keys fail with `ConfigError` (CLI exit 2) naming the full dotted key
  and the closest valid one;
- override values are parsed as YAML scalars (`lr=1e-4`, `bf16=true`,
  `layers=[0,2]`); list items are addressed by index (`stages.1.steps=20`);
- `__post_init__` of a dataclass may raise ConfigError("field must be ...");
  the dotted prefix is added here so the message names the key the user typed;
- `save_config(cfg, run_dir)` writes the resolved config into every run folder.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import inspect
import textwrap
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from reasonkd.errors import ConfigError
from reasonkd.utils.hardware import precision_lines
from reasonkd.utils.io import atomic_write, read_text

T = TypeVar("T")


def _suggest(key: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"{hint} (valid keys: {', '.join(sorted(valid))})"


def _unwrap_optional(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _convert(tp: Any, value: Any, key: str) -> Any:
    tp = _unwrap_optional(tp)
    if value is None:
        return None
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        named = getattr(tp, "NAMED", None)  # a config class may name whole values (TemperatureSchedule.NAMED)
        if isinstance(value, str) and named is not None:
            if value not in named:
                raise ConfigError(
                    f"{key}: unknown name {value!r}; known: {', '.join(named)} (or a mapping of {tp.__name__} fields)"
                )
            value = named[value]
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a mapping of {tp.__name__} fields, got {value!r}")
        return from_dict(tp, value, prefix=f"{key}.")
    origin = typing.get_origin(tp)
    if origin in (list, tuple):
        (inner, *_) = typing.get_args(tp) or (Any,)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} must be a list, got {value!r}")
        if dataclasses.is_dataclass(inner) and None in value:  # `- ` with nothing after it in YAML
            i = next(i for i, v in enumerate(value) if v is None)
            raise ConfigError(f"{key}.{i} is empty; give a mapping of {inner.__name__} fields")
        return [_convert(inner, v, f"{key}.{i}") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a mapping, got {value!r}")
        return dict(value)
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"{key} must be a number, got {value!r}") from None
    if tp is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if tp in (int, float, bool, str) and not isinstance(value, tp):
        if tp is str and isinstance(value, (int, float)):
            return str(value)
        raise ConfigError(f"{key} must be of type {tp.__name__}, got {value!r}")
    return value


def from_dict(cls: type[T], data: dict, prefix: str = "") -> T:
    """Build dataclass `cls` from a (nested) dict, rejecting unknown keys."""
    if data is None:
        data = {}
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            raise ConfigError(f"unknown config key '{prefix}{key}'" + _suggest(key, list(fields)))
        kwargs[key] = _convert(hints[key], value, f"{prefix}{key}")
    try:
        return cls(**kwargs)
    except ConfigError as e:
        msg = str(e)
        raise ConfigError(msg if msg.startswith(prefix) else f"{prefix}{msg}") from None
    except TypeError as e:  # missing required field
        raise ConfigError(f"{prefix.rstrip('.') or cls.__name__}: {e}") from None


def to_dict(cfg: Any, requested: bool = False) -> Any:
    """Plain-data view of a config (for YAML/JSON). `requested`: keys a config resolved for this machine
    (its `asked` dict, e.g. bf16_autocast "auto" -> false) as they were asked for, so that loading the
    view again resolves them again, with the same reason."""
    if dataclasses.is_dataclass(cfg):
        asked = getattr(cfg, "asked", {}) if requested else {}
        return {
            f.name: asked[f.name] if f.name in asked else to_dict(getattr(cfg, f.name), requested)
            for f in dataclasses.fields(cfg)
        }
    if isinstance(cfg, (list, tuple)):
        return [to_dict(v, requested) for v in cfg]
    if isinstance(cfg, dict):
        return {k: to_dict(v, requested) for k, v in cfg.items()}
    if isinstance(cfg, Path):
        return str(cfg)
    return cfg


def apply_override(data: dict, cls: type, dotted: str) -> None:
    """Apply one `a.b.c=value` override to the raw dict `data` (validated against `cls`)."""
    if "=" not in dotted:
        raise ConfigError(f"override '{dotted}' must look like key=value (e.g. stages.2.temperature.start=2.0)")
    key, raw = dotted.split("=", 1)
    key = key.strip()
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    parts = key.split(".")
    node: Any = data
    tp: Any = cls
    walked = []
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        tp = _unwrap_optional(tp)
        if dataclasses.is_dataclass(tp):
            names = [f.name for f in dataclasses.fields(tp)]
            if part not in names:
                where = ".".join(walked + [part])
                raise ConfigError(f"unknown config key '{where}'" + _suggest(part, names))
            ftp = typing.get_type_hints(tp)[part]
            if last:
                node[part] = value
                return
            if node.get(part) is None:
                default = next(f for f in dataclasses.fields(tp) if f.name == part)
                if default.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
                    node[part] = to_dict(default.default_factory())  # type: ignore[misc]
                else:
                    node[part] = to_dict(default.default) if default.default is not dataclasses.MISSING else {}
            node, tp = node[part], ftp
        elif typing.get_origin(tp) in (list, tuple):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(
                    f"config key '{'.'.join(walked + [part])}': index out of range (list has {len(node)} items)"
                )
            if last:
                node[int(part)] = value
                return
            node, tp = node[int(part)], typing.get_args(tp)[0]
        elif typing.get_origin(tp) is dict or tp is dict:
            if last:
                node[part] = value
                return
            node = node.setdefault(part, {})
            tp = Any
        else:
            raise ConfigError(
                f"config key '{'.'.join(walked)}' is a {getattr(tp, '__name__', tp)}, it has no field '{part}'"
            )
        walked.append(part)


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] | tuple = ()) -> T:
    """Load YAML `path` (optional) into `cls`, then apply dotted overrides."""
    data: dict = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"recipe file not found: {p}")
        text = read_text(p, "YAML config", ConfigError)  # binary / non-UTF-8 / empty: one error naming the file
        try:
            data = yaml.safe_load(text)
        except (yaml.YAMLError, RecursionError) as e:
            raise ConfigError(_yaml_error(p, text, e)) from None
        if not isinstance(data, dict):
            raise ConfigError(f"{p}: top level must be a mapping of config keys")
    # start from defaults so list/dataclass overrides have something to index
    base = to_dict(from_dict(cls, data), requested=True)
    for ov in overrides:
        apply_override(base, cls, ov)
    return from_dict(cls, base)


def _yaml_error(path: Path, text: str, e: Exception) -> str:
    mark = getattr(e, "problem_mark", None)
    where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
    cut = mark is not None and not text.endswith("\n") and mark.line + 1 >= len(text.splitlines())
    what = getattr(e, "problem", None) or str(e).splitlines()[0]
    return f"{where}: invalid YAML ({what}){'; the file ends mid-line (truncated?)' if cut else ''}; fix that line"


def save_config(cfg: Any, run_dir: str | Path, name: str = "config.yaml") -> Path:
    """Write the resolved config into `run_dir` (atomically), headed by comment lines saying which precision
    its dtype / bf16_autocast keys mean on this machine and why (comments: the file loads back unchanged)."""
    path = Path(run_dir) / name
    notes = precision_lines(cfg)
    with atomic_write(path) as f:
        f.writelines(f"# precision here: {line}\n" for line in notes)
        yaml.safe_dump(to_dict(cfg), f, sort_keys=False)
    return path


def field_docs(cls: type) -> dict[str, str]:
    """Docstrings written under each dataclass field (litgpt style); a subclass's own docstring of a field
    wins over its base class's."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if dataclasses.is_dataclass(klass):
            docs.update(_own_field_docs(klass))
    return docs


def _own_field_docs(cls: type) -> dict[str, str]:
    try:
        src = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    tree = ast.parse(src)
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs = {}
    for a, b in zip(body, body[1:]):
        if isinstance(a, ast.AnnAssign) and isinstance(a.target, ast.Name):
            if (
                isinstance(b, ast.Expr)
                and isinstance(getattr(b, "value", None), ast.Constant)
                and isinstance(b.value.value, str)
            ):
                docs[a.target.id] = " ".join(b.value.value.split())
    return docs


def _default(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return f.default if f.default is not dataclasses.MISSING else "<required>"


def _changed(value: Any) -> Any:
    """Plain data of a config: its first key (the name) and the keys that differ from their field defaults."""
    if dataclasses.is_dataclass(value):
        return {
            f.name: _changed(getattr(value, f.name))
            for i, f in enumerate(dataclasses.fields(value))
            if i == 0 or to_dict(getattr(value, f.name)) != to_dict(_default(f))
        }
    return [_changed(v) for v in value] if isinstance(value, list) else to_dict(value)


def _show(value: Any) -> str:
    """A default as help shows it; a list of dataclasses one item a line, with the keys set off their defaults."""
    if not (isinstance(value, list) and value and all(dataclasses.is_dataclass(v) for v in value)):
        return repr(value)
    flow = [yaml.safe_dump(_changed(v), default_flow_style=True, sort_keys=False, width=10**6).strip() for v in value]
    return "(other keys at their defaults)" + "".join(f"\n      - {item}" for item in flow)


def config_help(cls: type, prefix: str = "", defaults: Any = None) -> str:
    """Human-readable list of every key with its default and docstring. Defaults are those of `defaults`
    (an instance) where given, and a nested config shows what its field's default factory builds."""
    lines = []
    docs = field_docs(cls)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = _unwrap_optional(hints[f.name])
        default = getattr(defaults, f.name) if defaults is not None else _default(f)
        if dataclasses.is_dataclass(tp):
            lines.append(config_help(tp, f"{prefix}{f.name}.", default if dataclasses.is_dataclass(default) else None))
            continue
        lines.append(f"  {prefix}{f.name} = {_show(default)}\n      {docs.get(f.name, '')}")
    return "\n".join(lines)
