"""`reasonkd export` and `reasonkd bench` (deployment, docs/export.md).

reasonkd export --model smollm2-135m --format onnx --out exports/smollm2-onnx
reasonkd export --model smollm2-135m --format openvino --int8 --out exports/smollm2-ov-int8
reasonkd bench --model exports/smollm2-ov-int8                      # backend from the folder
reasonkd bench --model smollm2-135m --backend torch --batch-sizes 1,8 --new-tokens 64
"""

from __future__ import annotations

import gc
import logging
import tempfile

from reasonkd.errors import ReasonkdError

log = logging.getLogger(__name__)
BACKENDS = ("torch", "onnx", "openvino")


# The handlers import their machinery when called: this module is imported at every `reasonkd` start.
def _export(args) -> int:
    from reasonkd.export.build import export_model

    m = export_model(
        args.model,
        args.format,
        args.out,
        int8=args.int8,
        parity=not args.no_parity,
        parity_data=args.parity_data,
        parity_limit=args.parity_limit,
        parity_tokens=args.parity_tokens,
        accuracy_tokens=args.accuracy_tokens,
        max_drop=args.max_drop,
        batch_size=args.batch_size,
        progress=not args.quiet,
        template=args.template,
    )
    print(f"exported {m['source']} -> {args.out} ({m['format']}, {m['precision']}, {m['total_bytes'] / 1e6:.1f} MB)")
    for name, f in m["files"].items():
        print(f"  {name:32s} {f['size'] / 1e6:9.2f} MB")
    p = m["parity"]
    if p["status"] == "skipped":
        print("parity: skipped (--no-parity)")
    else:
        t = p["tokens"]
        print(
            f"parity: {p['status']}; greedy tokens identical to PyTorch on {t['identical_prompts']}/{t['prompts']} "
            f"prompts x {t['new_tokens']} tokens"
        )
    if "accuracy" in p:
        a = p["accuracy"]
        print(
            f"INT8 accuracy on {a['data']}: {a['int8_correct']}/{a['n']} vs fp32 PyTorch {a['torch_fp32_correct']}/"
            f"{a['n']} (drop {a['drop_points']:.1f} points; same answer text {a['same_completion']}/{a['n']})"
        )
    return 0


def _parse_sizes(text: str) -> list[int]:
    try:
        sizes = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise ReasonkdError(f"--batch-sizes must be a comma list of positive integers like 1,8; got {text!r}")
    return sizes


def _bench(args) -> int:
    from reasonkd.eval.measure import peak_rss_mb, reset_peak_rss
    from reasonkd.export.bench import bench_model, format_table, hardware
    from reasonkd.models import load_model, resolve

    sizes = _parse_sizes(args.batch_sizes)
    r = resolve(args.model)
    exported = r.kind in ("onnx", "openvino")
    backend = args.backend or (r.kind if exported else "torch")
    if backend not in BACKENDS:
        raise ReasonkdError(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if exported and backend != r.kind:
        raise ReasonkdError(
            f"{args.model} is a {r.kind} export; use --backend {r.kind} (or pass the source model "
            f"to benchmark {backend})"
        )
    with tempfile.TemporaryDirectory(prefix="reasonkd-bench-") as scratch:
        path = args.model
        if backend != "torch" and not exported:
            from reasonkd.export.build import export_model

            path = f"{scratch}/export"
            log.info("%s is not an export folder: exporting it to %s first (no parity check)", args.model, backend)
            export_model(args.model, backend, path, int8=args.int8, parity=False)
            gc.collect()
        reset_peak_rss()  # from here: the backend being measured, not the export
        from reasonkd.utils.hardware import dtype_name, resolve_dtype

        dtype = dtype_name(resolve_dtype(args.dtype)[0])  # "auto" -> what runs fastest here
        model, tok = load_model(path, dtype=dtype)
        precision = getattr(model, "precision", None) or {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}.get(
            dtype, dtype
        )
        rows = bench_model(
            model,
            tok,
            sizes,
            args.new_tokens,
            args.repeats,
            n_prompts=args.prompts,
            meta={"hardware": hardware(), "backend": backend, "precision": precision, "model": str(args.model)},
        )
    for row in rows:
        row["peak_rss_mb"] = peak_rss_mb()
    print(format_table(rows))
    if args.json:
        from reasonkd.utils.io import write_json

        write_json(args.json, rows)
        print(f"wrote {args.json}")
    return 0


def register(sub) -> None:
    """Add this package's subcommands to the top-level parser."""
    p = sub.add_parser(
        "export",
        help="export a model to ONNX Runtime or OpenVINO (fp32 or INT8), parity-checked",
        description=__doc__.splitlines()[0],
    )
    p.add_argument("--model", required=True, help="alias, model folder, .gguf file or hub id")
    p.add_argument("--format", required=True, choices=["onnx", "openvino"])
    p.add_argument("--int8", action="store_true", help="INT8 weights (OpenVINO, NNCF weight compression)")
    p.add_argument("--out", required=True, help="export folder to write (replaced atomically)")
    p.add_argument("--no-parity", action="store_true", help="skip the check against PyTorch")
    p.add_argument(
        "--parity-data",
        help="INT8 accuracy set: GSM8K JSONL, reasonkd dataset JSONL or data-engine "
        "folder (test split); default: 20 built-in GSM8K-style problems",
    )
    p.add_argument("--parity-limit", type=int, help="use only the first N problems of the accuracy set")
    p.add_argument("--parity-tokens", type=int, default=24, help="greedy tokens compared per parity prompt")
    p.add_argument("--accuracy-tokens", type=int, default=160, help="max new tokens per accuracy problem")
    p.add_argument(
        "--template",
        help="prompt template YAML for the INT8 accuracy check, as `reasonkd eval "
        "--template` (e.g. runs/demo/prompt.yaml for the demo's students)",
    )
    p.add_argument(
        "--max-drop",
        type=float,
        help="fail an INT8 export whose accuracy drops by more than this many points (default: report only)",
    )
    p.add_argument("--batch-size", type=int, default=8, help="batch size of the accuracy check")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_export)

    b = sub.add_parser(
        "bench",
        help="tokens/s, time to first token, ms/token and peak memory of one backend",
        description=__doc__.splitlines()[0],
    )
    b.add_argument("--model", required=True, help="export folder, or a model (alias/folder/.gguf) to run or export")
    b.add_argument("--backend", choices=BACKENDS, help="default: the export folder's format, else torch")
    b.add_argument("--int8", action="store_true", help="with a source model and --backend openvino: export INT8")
    b.add_argument(
        "--dtype",
        default="auto",
        help="torch backend: auto (bf16 where native, else fp32) | float32 | bfloat16 | float16",
    )
    b.add_argument("--batch-sizes", default="1,8", help="comma list, e.g. 1,8")
    b.add_argument("--new-tokens", type=int, default=64, help="greedy tokens generated per sequence")
    b.add_argument("--repeats", type=int, default=3, help="timed passes per batch size (median reported)")
    b.add_argument("--prompts", type=int, help="prompts per pass (default: the largest batch size)")
    b.add_argument("--json", help="also write the rows to this JSON file")
    b.set_defaults(func=_bench)
