"""Long-input problems (reasonkd.data.longctx): built end to end, verified, in their length buckets."""

import pytest

from reasonkd.data import build_dataset, load_items
from reasonkd.data.longctx import LongConfig, length_bucket, long_items, split_question
from reasonkd.data.recipe import DataRecipe
from reasonkd.data.verify import verify_item
from reasonkd.config import load_config
from reasonkd.errors import ConfigError
from reasonkd.models import load_tokenizer

OVERRIDES = [
    "math.families=[eggs_market,zoo_tickets,weekly_wages]",
    "math.per_family=1",
    "code.tasks=[]",
    "logic.zebra=0",
    "logic.sudoku=0",
    "augment.variants=0",
    "decontam.enabled=false",
    "parquet=false",
]


@pytest.fixture(scope="module")
def built(tiny_llama_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("long") / "data"
    recipe = load_config(
        DataRecipe,
        None,
        OVERRIDES + ["long.per_bucket=3", "long.buckets=[1k,2k,4k]", f"long.tokenizer={tiny_llama_dir}"],
    )
    build_dataset(recipe, out)
    return out, load_tokenizer(str(tiny_llama_dir))


def test_long_problems_verified_in_their_buckets(built):
    out, tok = built
    rows = [r for r in load_items(out) if "long" in r["meta"]]
    assert len(rows) == 9  # 3 per bucket, none dropped by verification
    for r in rows:
        assert verify_item(r, "\n".join(r["steps"]))  # the answer the program recomputed verifies
        n = len(tok(r["question"], add_special_tokens=False)["input_ids"])
        assert n == r["meta"]["long"]["tokens"]
        assert length_bucket(n) == r["meta"]["long"]["bucket"] == r["id"].split("-")[1]
        facts, ask = split_question(r["meta"]["long"]["short_question"])
        assert r["question"].endswith(ask)
        pos = [r["question"].index(f) for f in facts]
        assert pos == sorted(pos) and (len(pos) < 2 or pos[-1] - pos[0] > len(r["question"]) // 5)  # spread
    assert {r["split"] for r in rows if r["template"] == "zoo_tickets"} == {"test"}  # held-out family
    assert {r["split"] for r in rows if r["template"] != "zoo_tickets"} <= {"train", "val"}


def test_deterministic_by_seed(tiny_llama_dir):
    tok = load_tokenizer(str(tiny_llama_dir))
    cfg = LongConfig(per_bucket=2, buckets=["1k"])
    a = long_items(cfg, ["eggs_market", "road_trip"], seed=3, tokenizer=tok)
    b = long_items(cfg, ["eggs_market", "road_trip"], seed=3, tokenizer=tok)
    c = long_items(cfg, ["eggs_market", "road_trip"], seed=4, tokenizer=tok)
    assert [i.question for i in a] == [i.question for i in b]
    assert [i.question for i in a] != [i.question for i in c]


def test_length_buckets():
    assert [length_bucket(n) for n in (100, 600, 1024, 2000, 4096, 7400, 9000)] == [
        "short",
        "1k",
        "1k",
        "2k",
        "4k",
        "8k",
        "8k",
    ]


def test_bad_bucket_names_the_key():
    with pytest.raises(ConfigError, match="long.buckets"):
        LongConfig(buckets=["3k"])
