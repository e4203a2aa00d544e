"""GSM8K: grade-school math word problems, exact numeric match.

Data (`--data`): the official GSM8K JSONL (`question`, `answer` ending in
`#### N`; no package ships it, so pass your local copy), a reasonkd dataset
JSONL, a data-engine output folder (its held-out `test` split, math only), or
any dataset reasonkd.data.external reads (`hf:NAME[@SPLIT]`, a MATH-style
Parquet / JSON / Arrow file: its test split, or the whole file).
Problems whose answer is not a plain number (`\\frac{3}{4}`, intervals, sets)
are graded by `math_latex` (math-verify) instead of numeric match.
`idx` is the 0-based position in that list (for a JSONL file: its line number,
blank lines skipped), and is what `--samples` rows refer to.

Every extraction style of reasonkd.data.verify is reported side by side
(strict `#### N`, flexible last number, boxed, "the answer is"); the primary
verdict, "final", is verify_math (boxed > #### > "answer is" > last number).
Zero-shot chain-of-thought by default; `few_shot=N` prepends N of the 8
exemplars of Wei et al. (2022).
"""

from __future__ import annotations

from collections import Counter

from reasonkd.errors import ReasonkdError
from reasonkd.eval.tasks.base import Task, data_path, grouped_metrics, register

PRIMARY = "final"
EXEMPLARS = [
    (
        "There are 15 trees in the grove. Grove workers will plant trees in the grove today. After they are done, "
        "there will be 21 trees. How many trees did the grove workers plant today?",
        "There are 15 trees originally. Then there were 21 trees after some more were planted. "
        "So there must have been 21 - 15 = 6.\n#### 6",
    ),
    (
        "If there are 3 cars in the parking lot and 2 more cars arrive, how many cars are in the parking lot?",
        "There are originally 3 cars. 2 more cars arrive. 3 + 2 = 5.\n#### 5",
    ),
    (
        "Leah had 32 chocolates and her sister had 42. If they ate 35, how many pieces do they have left in total?",
        "Originally, Leah had 32 chocolates. Her sister had 42. So in total they had 32 + 42 = 74. "
        "After eating 35, they had 74 - 35 = 39.\n#### 39",
    ),
    (
        "Jason had 20 lollipops. He gave Denny some lollipops. Now Jason has 12 lollipops. How many lollipops "
        "did Jason give to Denny?",
        "Jason started with 20 lollipops. Then he had 12 after giving some to Denny. So he gave Denny 20 - 12 = 8.\n"
        "#### 8",
    ),
    (
        "Shawn has five toys. For Christmas, he got two toys each from his mom and dad. How many toys does he "
        "have now?",
        "Shawn started with 5 toys. If he got 2 toys each from his mom and dad, then that is 4 more toys. "
        "5 + 4 = 9.\n#### 9",
    ),
    (
        "There were nine computers in the server room. Five more computers were installed each day, from monday "
        "to thursday. How many computers are now in the server room?",
        "There were originally 9 computers. For each of 4 days, 5 more computers were added. So 5 * 4 = 20 "
        "computers were added. 9 + 20 is 29.\n#### 29",
    ),
    (
        "Michael had 58 golf balls. On tuesday, he lost 23 golf balls. On wednesday, he lost 2 more. How many "
        "golf balls did he have at the end of wednesday?",
        "Michael started with 58 golf balls. After losing 23 on tuesday, he had 58 - 23 = 35. After losing 2 "
        "more, he had 35 - 2 = 33 golf balls.\n#### 33",
    ),
    (
        "Olivia has $23. She bought five bagels for $3 each. How much money does she have left?",
        "Olivia had 23 dollars. 5 bagels for 3 dollars each will be 5 x 3 = 15 dollars. So she has 23 - 15 "
        "dollars left. 23 - 15 is 8.\n#### 8",
    ),
]


def _image(row: dict) -> dict:
    """Where an image dataset row's problem is (`reasonkd ocr render` / `reasonkd ocr import`)."""
    return {k: row[k] for k in ("source_image", "ocr_text") if row.get(k)}


@register("gsm8k")
class GSM8K(Task):
    def load(self) -> list[dict]:
        from reasonkd.data import load_items
        from reasonkd.data.external import is_table_spec
        from reasonkd.data.verify import extract_answer, reference_answer
        from reasonkd.utils.io import read_jsonl

        if is_table_spec(self.data):  # hf:NAME, Parquet, ...
            items = load_items(self.data, split="test")
            return [
                {
                    "idx": i,
                    "domain": "math",
                    "id": r["id"],
                    "question": r["question"],
                    "reference": reference_answer(r),
                    "verifier": r["verifier"],
                }
                for i, r in enumerate(items)
            ]
        path = data_path(
            self.data,
            "gsm8k",
            "the official GSM8K JSONL (question/answer with '#### N') "
            "or a data-engine output folder (`reasonkd data build`)",
        )
        if path.is_dir() and (path / "manifest.jsonl").is_file() and not (path / "test.jsonl").is_file():
            path = path / "manifest.jsonl"  # a folder of rendered images (`reasonkd ocr render`)
        if path.is_dir():
            items = [r for r in load_items(path, split="test") if r["domain"] == "math"]
            rows = [
                {"id": r["id"], "question": r["question"], "reference": reference_answer(r), "verifier": r["verifier"]}
                for r in items
            ]
        else:
            raw = read_jsonl(path, allow_empty=False)
            rows = []
            for i, r in enumerate(raw):
                if "verifier" in r:  # a reasonkd dataset file
                    if r.get("domain") == "math":
                        rows.append(
                            {
                                "id": r["id"],
                                "question": r["question"],
                                "reference": reference_answer(r),
                                "verifier": r["verifier"],
                                **_image(r),
                            }
                        )
                    continue
                if "question" not in r or "answer" not in r:
                    raise ReasonkdError(f"{path}: row {i + 1} lacks 'question'/'answer'; expected GSM8K JSONL")
                ans = str(r["answer"])
                ref = extract_answer(ans, "strict") if "####" in ans else ans.strip()
                rows.append({"id": str(r.get("id", f"gsm8k-{i}")), "question": r["question"], "reference": ref})
        if not rows:
            raise ReasonkdError(f"{path}: no math problems found for gsm8k")
        if any("source_image" in r for r in rows):
            from reasonkd.ocr.inputs import row_question  # lazy: only image datasets need the OCR extra

            for r in rows[: self.limit or len(rows)]:  # the model is asked what OCR read from the image
                if "source_image" in r:
                    r["question"] = row_question(r, path.parent)
        return [{"idx": i, "domain": "math", **r} for i, r in enumerate(rows)]

    def prompt(self, ex: dict) -> str:
        k = int(self.options.get("few_shot") or 0)
        if k < 0 or k > len(EXEMPLARS):
            raise ReasonkdError(f"--few-shot must be in 0..{len(EXEMPLARS)}, got {k}")
        shots = "".join(f"Question: {q}\nAnswer: {a}\n\n" for q, a in EXEMPLARS[:k])
        return shots + super().prompt(ex)

    def score(self, ex: dict, completion: str) -> dict:
        from reasonkd.data.verify import EXTRACTION_STYLES, extract_answer, extract_final_answer, numbers_equal
        from reasonkd.data.verify import verify_math

        extracted = {s: extract_answer(completion, s) for s in EXTRACTION_STYLES}
        extracted[PRIMARY] = extract_final_answer(completion)
        correct = {s: v is not None and numbers_equal(v, ex["reference"]) for s, v in extracted.items()}
        if ex.get("verifier") == "math_latex":  # a LaTeX answer: equivalence by math-verify, not numbers
            from reasonkd.data.latex import latex_verdict

            correct[PRIMARY], reason = latex_verdict(completion, ex["reference"])
            out = {"verdict": correct[PRIMARY], "extracted": extracted, "correct": correct, "verifier": "math_latex"}
            return {**out, "error": reason} if reason else out
        correct[PRIMARY] = verify_math(completion, ex["reference"])
        return {"verdict": correct[PRIMARY], "extracted": extracted, "correct": correct}

    def metrics(self, rows: list[dict], seed: int = 0) -> dict:
        out = grouped_metrics(rows, seed=seed)
        styles = rows[0]["correct"].keys() if rows else ()
        out["primary"] = PRIMARY
        out["styles"] = {s: sum(r["correct"][s] for r in rows) / len(rows) for s in styles}
        out["verifiers"] = dict(Counter(r.get("verifier", "math_numeric") for r in rows))
        return out
