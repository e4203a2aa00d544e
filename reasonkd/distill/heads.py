"""Selective distillation: find the teacher's key reasoning heads, then pay for
attention maps only in the layers that hold them.

    reasonkd heads --teacher qwen2.5-coder-0.5b --data data/quick --out runs/heads --top-k 16
    result = score_heads(model, tok, [{"prompt": q, "trace": t}, ...], method="gradient")
    selection = load_head_selection("runs/heads/heads.json", top_k=16)   # {layer: [head, ...]}
    use_eager_attention_only_in(model, set(selection))   # only these layers return attention maps
    maps = attentions_by_layer(model, model(ids, output_attentions=True).attentions)

Head importance is measured on the log-likelihood of the trace tokens given the
chat-formatted prompt, through a gate on each head (a forward pre-hook on
`self_attn.o_proj` scales that head's slice of its input):
  gradient: |dNLL/dgate| per batch, averaged over batches (Michel et al. 2019);
            one forward + backward per batch scores every head at once.
  ablation: exact rise in mean NLL when the head's gate is 0; one pass per head.
Attention entropy (nats, over the trace tokens' query rows) is reported beside it.
Works for Llama/Qwen2-style models (`model.model.layers[i].self_attn.o_proj`).
"""

from __future__ import annotations

import copy
import json
import logging
import warnings
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm
from transformers import AttentionInterface

from reasonkd.data import load_items
from reasonkd.distill.data import collate, encode_all
from reasonkd.errors import ConfigError, ReasonkdError
from reasonkd.teacher.traces import load_traces, traces_file
from reasonkd.utils.io import atomic_write, read_jsonl

log = logging.getLogger(__name__)
METHODS = ("gradient", "ablation")
EAGER_ANY_MASK = "reasonkd_eager"
"""Attention-function name registered with transformers: eager maths that accepts any mask."""


# ---------------------------------------------------------------- attention modules and gates


def attention_modules(model) -> list:
    """The self-attention module of each decoder layer, in layer order."""
    layers = getattr(getattr(model, "model", model), "layers", None)
    if layers is None or not all(hasattr(getattr(b, "self_attn", None), "o_proj") for b in layers):
        raise ReasonkdError(
            f"{type(model).__name__}: head scoring needs a Llama/Qwen2-style model "
            "(model.model.layers[i].self_attn.o_proj)"
        )
    return [b.self_attn for b in layers]


@contextmanager
def head_gates(model, gates: torch.Tensor):
    """Multiply head h of layer l by gates[l, h] while the context is open.

    gates: (n_layers, n_heads); o_proj's input is (B, L, n_heads * head_dim), head-major.
    """
    handles = []
    for i, attn in enumerate(attention_modules(model)):

        def scale(module, args, i=i):
            x = args[0]
            g = gates[i].to(x.dtype)
            return (x.view(*x.shape[:-1], g.shape[0], -1) * g[:, None]).view(x.shape), *args[1:]

        handles.append(attn.o_proj.register_forward_pre_hook(scale))
    try:
        yield gates
    finally:
        for h in handles:
            h.remove()


# ---------------------------------------------------------------- eager attention in chosen layers


def _eager_any_mask(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    """Eager attention (returns its weights) for a layer inside an sdpa model.

    The model builds ONE mask for its own implementation: with sdpa that is None (causal
    shortcut) or a bool mask, which HF's eager function would misread (no causal mask / adding
    0-1). So the mask is turned into the additive form here. query: (B, H, Q, D); key/value:
    (B, H_kv, K, D). Returns ((B, Q, H, D), (B, H, Q, K)).
    """
    q_len, k_len = query.shape[-2], key.shape[-2]
    rep = query.shape[1] // key.shape[1]  # grouped-query: each kv head serves `rep` adjacent heads
    key, value = key.repeat_interleave(rep, dim=1), value.repeat_interleave(rep, dim=1)
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None and attention_mask.dim() == 4 and attention_mask.dtype != torch.bool:
        scores = scores + attention_mask[:, :, :, :k_len]
    else:
        if attention_mask is None or attention_mask.dim() == 2:  # causal, queries are the last q_len keys
            kpos = torch.arange(k_len, device=query.device)
            allowed = (kpos[None, :] <= kpos[k_len - q_len :, None])[None, None]
            if attention_mask is not None:  # 2-D padding mask (flash-attention models)
                allowed = allowed & attention_mask[:, None, None, :k_len].bool()
        else:
            allowed = attention_mask[:, :, :, :k_len]
        scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
    weights = F.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    weights = F.dropout(weights, p=dropout, training=module.training)
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), weights


def _config_with(config, implementation: str):
    cfg = copy.copy(config)  # shallow: the layer only reads cfg._attn_implementation at forward time
    cfg._attn_implementation = implementation
    return cfg


def use_eager_attention_only_in(model, layers) -> list[int]:
    """Make only `layers` (0-based) compute eager attention; the others keep the fast kernel.

    transformers 4.57 picks the kernel per call from `self_attn.config._attn_implementation`, so
    each layer gets its own shallow config copy. The model-level config is left alone because it
    also decides the mask the model builds: in an sdpa model the listed layers get the
    `reasonkd_eager` function (eager maths that reads sdpa's mask correctly); in an eager model
    the other layers get "sdpa" (which reads the eager mask correctly). Logits do not change.
    With output_attentions=True, `outputs.attentions` then holds one (B, H, L, L) tensor per
    listed layer, in layer order: use `attentions_by_layer`. Returns the sorted layers.
    Call again to change the set; `model.set_attn_implementation` afterwards does not reach
    the per-layer copies.
    """
    attns = attention_modules(model)
    chosen = sorted({int(i) for i in layers})
    bad = [i for i in chosen if not 0 <= i < len(attns)]
    if bad:
        raise ReasonkdError(f"layers {bad} out of range: this model has layers 0..{len(attns) - 1}")
    AttentionInterface.register(EAGER_ANY_MASK, _eager_any_mask)
    # the model-level check only looks at the model config; the chosen layers do return maps
    warnings.filterwarnings("ignore", message="`output_attentions=True` is not supported", category=UserWarning)
    shared = model.config
    for i, attn in enumerate(attns):
        if shared._attn_implementation == "eager":
            attn.config = shared if i in chosen else _config_with(shared, "sdpa")
        else:
            attn.config = _config_with(shared, EAGER_ANY_MASK) if i in chosen else shared
    model._reasonkd_eager_layers = chosen
    return chosen


def attentions_by_layer(model, attentions) -> dict[int, torch.Tensor]:
    """{layer: (B, H, L, L)} from `outputs.attentions` of a model with eager layers chosen above
    (all layers when use_eager_attention_only_in was never called on it)."""
    attentions = attentions or ()  # None when no layer returned a map
    layers = getattr(model, "_reasonkd_eager_layers", None)
    layers = list(range(len(attentions))) if layers is None else layers
    if len(attentions) != len(layers):
        raise ReasonkdError(
            f"got {len(attentions)} attention maps for eager layers {layers}: pass output_attentions=True"
        )
    return dict(zip(layers, attentions))


@contextmanager
def _all_layers_eager(model):
    attns = attention_modules(model)
    saved = [a.config for a in attns], getattr(model, "_reasonkd_eager_layers", None)
    use_eager_attention_only_in(model, range(len(attns)))
    try:
        yield
    finally:
        for a, cfg in zip(attns, saved[0]):
            a.config = cfg
        model._reasonkd_eager_layers = saved[1]


# ---------------------------------------------------------------- scoring


def _batches(tokenizer, examples, batch_size: int, max_length: int, device) -> list[tuple[torch.Tensor, ...]]:
    """(input_ids, attention_mask, labels), each (B, L), right-padded; labels -100 off the trace.

    Examples are encoded as the trainer encodes them (chat prompt + trace + end of turn).
    """
    for i, ex in enumerate(examples):
        if not isinstance(ex, dict) or not all(isinstance(ex.get(k), str) and ex[k] for k in ("prompt", "trace")):
            raise ReasonkdError(f"example {i}: needs non-empty 'prompt' and 'trace' strings")
    encoded = encode_all(examples, tokenizer, max_length)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    out = []
    for s in range(0, len(encoded), batch_size):
        batch = collate(encoded[s : s + batch_size], pad_id or 0)
        out.append(tuple(batch[k].to(device) for k in ("input_ids", "attention_mask", "labels")))
    return out


def _trace_nll(model, batch, output_attentions=False):
    """(summed NLL of the trace tokens, their count, attentions or None)."""
    ids, mask, labels = batch
    out = model.get_decoder()(input_ids=ids, attention_mask=mask, use_cache=False, output_attentions=output_attentions)
    keep = labels[:, 1:] != -100
    # project only the positions that predict trace tokens: full (B, L, V) logits would dominate memory
    logits = model.get_output_embeddings()(out.last_hidden_state[:, :-1][keep]).float()
    nll = F.cross_entropy(logits, labels[:, 1:][keep], reduction="sum")
    return nll, int(keep.sum()), out.attentions if output_attentions else None


def _entropy_sums(attentions, rows: torch.Tensor) -> torch.Tensor:
    """Per (layer, head) sum of row entropies over rows (B, L) bool; attentions: (B, H, L, L) each."""
    sums = []
    for a in attentions:
        p = a.detach().float()
        ent = -(p * p.clamp_min(1e-12).log()).sum(-1)  # (B, H, L)
        sums.append((ent * rows[:, None, :]).sum((0, 2)))
    return torch.stack(sums)


def score_heads(
    model,
    tokenizer,
    examples,
    method: str = "gradient",
    batch_size: int = 4,
    max_length: int = 256,
    model_id: str | None = None,
    progress: bool = True,
) -> dict:
    """Importance and attention entropy of every head, on the trace given the prompt.

    examples: [{"prompt", "trace", optional "system"}]. Returns {"model", "method", "n_examples",
    "n_tokens", "n_layers", "n_heads", "nll" (mean per trace token), "scores" and "entropy"
    ((n_layers, n_heads) nested lists), "ranking" ([{layer, head, score, entropy}], score desc)}.
    The model's weights, mode and attention settings are unchanged afterwards.
    """
    if method not in METHODS:
        raise ConfigError(f"method must be one of {METHODS}, got {method!r}")
    if batch_size < 1 or max_length < 2:
        raise ConfigError(f"batch_size must be >= 1 and max_length >= 2, got {batch_size}, {max_length}")
    n_layers, n_heads = len(attention_modules(model)), model.config.num_attention_heads
    batches = _batches(tokenizer, examples, batch_size, max_length, next(model.parameters()).device)
    was_training, grads = model.training, [p.requires_grad for p in model.parameters()]
    model.eval()
    model.requires_grad_(False)  # only the gates need gradients
    gates = torch.ones(n_layers, n_heads, device=next(model.parameters()).device)
    scores, ent = torch.zeros(n_layers, n_heads), torch.zeros(n_layers, n_heads)
    nll_total, n_tokens, n_rows = 0.0, 0, 0
    try:
        with head_gates(model, gates):
            with _all_layers_eager(model):  # entropy needs the maps; gradient scores come from the same pass
                gates.requires_grad_(method == "gradient")
                for batch in tqdm(batches, desc=f"heads ({method})", disable=not progress or method == "ablation"):
                    with torch.set_grad_enabled(method == "gradient"):
                        nll, n, attentions = _trace_nll(model, batch, output_attentions=True)
                        if method == "gradient":
                            (nll / n).backward()
                            scores += gates.grad.abs().cpu()
                            gates.grad = None
                    rows = batch[2] != -100
                    ent += _entropy_sums(attentions, rows).cpu()
                    n_rows += int(rows.sum())
                    nll_total, n_tokens = nll_total + float(nll.detach()), n_tokens + n
                    del attentions
            if method == "gradient":
                scores /= len(batches)
            else:  # outside the eager context: ablation passes need no maps, so use the fast kernel
                scores = _ablation(model, gates, batches, n_tokens, progress)
    finally:
        model.train(was_training)
        for p, g in zip(model.parameters(), grads):
            p.requires_grad_(g)
    ent /= max(n_rows, 1)
    ranking = sorted(
        (
            {"layer": layer, "head": h, "score": float(scores[layer, h]), "entropy": float(ent[layer, h])}
            for layer in range(n_layers)
            for h in range(n_heads)
        ),
        key=lambda r: -r["score"],
    )
    name = model_id or getattr(getattr(model, "reasonkd_source", None), "alias", None) or model.name_or_path
    n_examples = sum(b[0].shape[0] for b in batches)
    return {
        "model": str(name),
        "method": method,
        "n_examples": n_examples,
        "n_tokens": n_tokens,
        "n_layers": n_layers,
        "n_heads": n_heads,
        "max_length": max_length,
        "nll": nll_total / n_tokens,
        "scores": scores.tolist(),
        "entropy": ent.tolist(),
        "ranking": ranking,
    }


@torch.no_grad()
def _ablation(model, gates, batches, n_tokens: int, progress: bool) -> torch.Tensor:
    """Rise in mean trace NLL with each head's gate at 0: (n_layers, n_heads). Needs head_gates open."""
    gates.requires_grad_(False)
    scores = torch.zeros(gates.shape)
    base_nll = sum(float(_trace_nll(model, b)[0]) for b in batches)  # same kernel as the ablated passes
    bar = tqdm(total=gates.numel(), desc="heads (ablation)", disable=not progress, unit="head")
    for layer in range(gates.shape[0]):
        for h in range(gates.shape[1]):
            gates[layer, h] = 0.0
            total = sum(float(_trace_nll(model, b)[0]) for b in batches)
            gates[layer, h] = 1.0
            scores[layer, h] = (total - base_nll) / n_tokens
            bar.update()
    bar.close()
    return scores


# ---------------------------------------------------------------- files and the command


def load_examples(path, limit: int | None = None) -> list[dict]:
    """{"prompt", "trace", ...} examples from teacher traces (JSONL or a `teacher generate` folder, read by
    teacher.traces.load_traces) or from data-engine items (folder or JSONL: question -> prompt,
    steps + '#### answer' -> trace; negatives skipped)."""
    p = Path(path)
    if not (p.is_dir() or p.is_file()):
        raise ReasonkdError(f"--data {p}: no such file or folder")
    if traces_file(p).is_file() and all("trace" in row for row in read_jsonl(traces_file(p))):
        return load_traces(p, limit)
    rows = load_items(p, split="train") if p.is_dir() else read_jsonl(p)
    examples = []
    for i, row in enumerate(rows):
        if not row.get("question"):
            raise ReasonkdError(
                f"{p}: row {i + 1} has neither 'trace' nor 'question'; pass teacher traces "
                "(prompt + trace) or a dataset built by `reasonkd data build`"
            )
        if row.get("kind") == "negative":
            continue
        steps = [s for s in row.get("steps") or [] if s.strip()]
        trace = "\n".join(steps) if steps else str(row.get("answer", ""))
        if steps and not steps[-1].lstrip().startswith("####"):
            trace += f"\n#### {row.get('answer', '')}"
        if not trace.strip():
            raise ReasonkdError(f"{p}: row {i + 1} has an empty trace")
        examples.append({"prompt": row["question"], "trace": trace, "system": row.get("system")})
        if limit and len(examples) >= limit:
            break
    if not examples:
        raise ReasonkdError(f"{p}: no usable rows (all negatives or empty)")
    return examples


def load_head_selection(path, top_k: int) -> dict[int, list[int]]:
    """{layer: sorted head indices} of the `top_k` best heads in a heads.json."""
    try:
        ranking = json.loads(Path(path).read_text())["ranking"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ReasonkdError(f"{path}: not a heads.json written by `reasonkd heads` ({e})") from None
    if not 1 <= top_k <= len(ranking):
        raise ConfigError(f"top_k must be in 1..{len(ranking)} for {path}, got {top_k}")
    selection: dict[int, list[int]] = {}
    for r in ranking[:top_k]:
        selection.setdefault(int(r["layer"]), []).append(int(r["head"]))
    return {layer: sorted(h) for layer, h in sorted(selection.items())}


def plot_heads(result: dict, path, top_k: int) -> None:
    """Heatmaps (layers x heads) of importance and entropy, top-k heads circled; PNG at `path`."""
    from matplotlib.figure import Figure  # lazy: matplotlib only for the plot; no pyplot (no global backend)

    top = result["ranking"][:top_k]
    fig = Figure(figsize=(3 + 0.7 * result["n_heads"], 1.5 + 0.22 * result["n_layers"]))
    for ax, key, cmap, title in zip(
        fig.subplots(1, 2),
        ("scores", "entropy"),
        ("viridis", "magma"),
        (f"importance ({result['method']})", "attention entropy (nats)"),
    ):
        im = ax.imshow(result[key], aspect="auto", cmap=cmap, interpolation="nearest")
        ax.scatter(
            [r["head"] for r in top],
            [r["layer"] for r in top],
            s=30,
            facecolors="none",
            edgecolors="red",
            linewidths=1.2,
            label=f"top {top_k}",
        )
        ax.set(title=title, xlabel="head", ylabel="layer")
        fig.colorbar(im, ax=ax, fraction=0.05)
    fig.suptitle(f"{result['model']}: {result['n_examples']} traces")
    fig.tight_layout()
    with atomic_write(path, mode="wb", encoding=None) as f:
        fig.savefig(f, format="png", dpi=110)
