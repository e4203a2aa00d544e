"""`reasonkd ocr read|import|render`, and the image path of `reasonkd generate --image`.

reasonkd ocr read problem.png [more.jpg ...]            # print the text, per-line confidence
reasonkd ocr import FOLDER --out DATA [--split test]    # a folder of images -> a dataset
reasonkd ocr render DATA --out FOLDER [--degraded]      # data-engine / GSM8K problems -> images
reasonkd generate --model M --image problem.png [more.png ...]
"""

from __future__ import annotations

import sys

from reasonkd.errors import ReasonkdError


def _read(args) -> int:
    from reasonkd.ocr.read import read_image

    bad = 0
    for f in args.files:
        try:
            res = read_image(f)
        except ReasonkdError as e:
            print(f"reasonkd: error: {e}", file=sys.stderr)
            bad += 1
            continue
        print(f"== {f}  (confidence {res.confidence:.3f}, {res.seconds:.2f} s)")
        for line in res.lines:
            print(f"{line.confidence:.3f}  {line.text}" if args.confidence else line.text)
    return 1 if bad else 0


def _import(args) -> int:
    import json

    from reasonkd.ocr.importer import import_folder

    out = import_folder(args.folder, args.out, split=args.split, limit=args.limit)
    stats = json.loads((out / "stats.json").read_text())
    print(
        f"{stats['imported']} of {stats['images']} images imported, {stats['skipped']} skipped "
        f"(see {out / 'skipped.jsonl'}); mean confidence {stats['mean_confidence']:.3f}; wrote {out}"
    )
    return 0


def _render(args) -> int:
    from reasonkd.ocr.render import render_dataset

    out = render_dataset(
        args.data, args.out, degraded=args.degraded, seed=args.seed, limit=args.limit, split=args.split or None
    )
    n = sum(1 for _ in open(out / "manifest.jsonl", encoding="utf-8"))
    print(f"{n} {'degraded' if args.degraded else 'clean'} images and manifest.jsonl in {out}")
    return 0


def cmd_generate_images(args) -> int:
    """`reasonkd generate --image FILE...`: OCR each image, answer every readable one (batched)."""
    from reasonkd.models import load_model
    from reasonkd.models.generation import apply_chat, generate_batch
    from reasonkd.ocr.inputs import image_prompts

    prompts = image_prompts(args.image, args.prompt)
    good = [(f, p) for f, p in prompts if isinstance(p, str)]
    for _, p in prompts:
        if not isinstance(p, str):
            print(f"reasonkd: error: {p}", file=sys.stderr)
    if not good:
        return 1
    model, tok = load_model(args.model, dtype=args.dtype)
    chats = [apply_chat(tok, p, system=args.system or None) for _, p in good]
    outs = generate_batch(
        model, tok, chats, max_new_tokens=args.max_new_tokens, temperature=args.temperature, progress=len(chats) > 1
    )
    for (f, p), out in zip(good, outs):
        print(f"== {f}\n-- read from the image:\n{p}\n-- answer:\n{out.text.strip()}\n")
    return 0 if len(good) == len(prompts) else 1


def _extend_generate(sub) -> None:
    """Give `reasonkd generate` (registered by reasonkd.models.cli) an --image option; models stays
    unaware of OCR: a higher layer plugs into a lower one here, never the other way round."""
    gen = sub.choices.get("generate")
    if gen is None:
        return
    gen.add_argument(
        "--image",
        nargs="+",
        metavar="FILE",
        help="answer the problem read (OCR) from each image; needs the `ocr` extra",
    )
    text_only = gen.get_default("func")
    gen.set_defaults(func=lambda args: cmd_generate_images(args) if args.image else text_only(args))


def register(sub) -> None:
    """Add `reasonkd ocr` and its subcommands to the top-level parser, and --image to `generate`."""
    _extend_generate(sub)
    p = sub.add_parser("ocr", help="read problem images: OCR, import a folder as a dataset, render test images")
    osub = p.add_subparsers(dest="ocr_cmd", metavar="ACTION", required=True)
    r = osub.add_parser("read", help="print the text of one or more images")
    r.add_argument("files", nargs="+", metavar="FILE")
    r.add_argument("--confidence", action="store_true", help="prefix each line with its confidence")
    r.set_defaults(func=_read)
    i = osub.add_parser("import", help="OCR a folder of images into a dataset (item schema + ocr fields)")
    i.add_argument("folder", metavar="FOLDER")
    i.add_argument("--out", required=True, metavar="DATA", help="dataset folder to write")
    i.add_argument("--split", default="test", help="split of images the folder's manifest does not place")
    i.add_argument("--limit", type=int, default=None, help="first N files only")
    i.set_defaults(func=_import)
    d = osub.add_parser("render", help="draw data-engine or GSM8K problems into images (clean or degraded)")
    d.add_argument("data", metavar="DATA", help="dataset folder, reasonkd JSONL or GSM8K JSONL")
    d.add_argument("--out", required=True, metavar="FOLDER")
    d.add_argument(
        "--degraded",
        action="store_true",
        help="rotation, blur, noise, and some of low contrast, two columns, a photo-like background",
    )
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--limit", type=int, default=None)
    d.add_argument("--split", default="test", help="split of a dataset folder to draw ('' = all)")
    d.set_defaults(func=_render)
