"""R1-aware splitting of teacher outputs into reasoning and final answer."""

import pytest

from reasonkd.teacher.parse import ThinkSplitter, parse_output


def test_inline_think_block():
    p = parse_output("<think>\n2 + 3 = 5, times 2 is 10\n</think>\n\nThe answer is \\boxed{10}.")
    assert p.r1 and p.think_closed
    assert p.reasoning == "2 + 3 = 5, times 2 is 10"
    assert p.final == "The answer is \\boxed{10}."
    assert p.trace == "<think>\n2 + 3 = 5, times 2 is 10\n</think>\n\nThe answer is \\boxed{10}."


def test_think_opened_by_the_prompt():
    # R1 chat templates end the prompt with "<think>\n": the completion only closes it
    p = parse_output("first 4 * 3 = 12\n</think>\n#### 12")
    assert p.r1 and p.reasoning == "first 4 * 3 = 12" and p.final == "#### 12"
    assert p.trace.startswith("<think>\n") and "</think>" in p.trace


def test_reasoning_content_field_is_kept_apart():
    p = parse_output("The answer is 7.", reasoning_content="3 + 4 = 7")
    assert p.r1 and p.reasoning == "3 + 4 = 7" and p.final == "The answer is 7."
    assert p.trace == "<think>\n3 + 4 = 7\n</think>\n\nThe answer is 7."
    # an endpoint that also echoes tags in content: the reasoning_content field wins
    q = parse_output("<think>junk</think>The answer is 7.", reasoning_content="3 + 4 = 7")
    assert q.reasoning == "3 + 4 = 7" and q.final == "The answer is 7."


def test_empty_reasoning_content_falls_back_to_content():
    p = parse_output("<think>a</think>b", reasoning_content="   ")
    assert (p.reasoning, p.final) == ("a", "b")


def test_unclosed_think_is_flagged():
    p = parse_output("<think>let me see, 12 * 4 = 48 and then")
    assert p.r1 and not p.think_closed and p.final == ""
    assert p.reasoning == "let me see, 12 * 4 = 48 and then"
    assert "</think>" not in p.trace


def test_several_think_blocks_are_one_chain():
    p = parse_output("<think>a = 1</think> hmm <think>b = 2</think>\n#### 3")
    assert p.final == "#### 3"
    assert "a = 1" in p.reasoning and "b = 2" in p.reasoning and "<think>" not in p.reasoning


@pytest.mark.parametrize(
    "text,reasoning,final",
    [
        ("Step 1: 2 * 3 = 6.\nStep 2: 6 + 1 = 7.\n#### 7", "Step 1: 2 * 3 = 6.\nStep 2: 6 + 1 = 7.", "#### 7"),
        ("12 / 4 = 3\nSo the answer is $\\boxed{3}$.", "12 / 4 = 3", "So the answer is $\\boxed{3}$."),
        ("First add.\nThe answer is 9.\nDone.", "First add.", "The answer is 9.\nDone."),
        (
            "Loop over items.\n```python\ndef f(x):\n    return x\n```",
            "Loop over items.",
            "```python\ndef f(x):\n    return x\n```",
        ),
        ("no marker at all, 5 apples", "no marker at all, 5 apples", ""),
        ("", "", ""),
    ],
)
def test_plain_outputs_split_at_the_last_answer_line(text, reasoning, final):
    p = parse_output(text)
    assert not p.r1
    assert (p.reasoning, p.final) == (reasoning, final)


def test_a_plain_trace_is_the_output_as_written():
    """Not reasoning + "\\n" + final: the blank line the model put before its answer line stays, so the
    trace is the very tokens the teacher generated (and returned log-probs for)."""
    text = "\n1. 2 * 3 = 6.\n2. 6 + 1 = 7.\n\n#### 7\n"
    p = parse_output(text)
    assert p.trace == text.strip() and p.final == "#### 7" and p.reasoning.endswith("6 + 1 = 7.")


def test_plain_uses_the_last_answer_line():
    p = parse_output("#### 5 was a guess\ncheck: 2 + 2 = 4\n#### 4")
    assert p.final == "#### 4" and p.reasoning.endswith("2 + 2 = 4")


def test_r1_trace_round_trips():
    p = parse_output("x</think>y", None)
    q = parse_output(p.trace)
    assert (q.reasoning, q.final, q.r1) == (p.reasoning, p.final, True)


@pytest.mark.parametrize("starts_in_think", [False, True])
def test_think_splitter_streams_like_the_batch_parser(starts_in_think):
    text = ("" if starts_in_think else "<think>") + "2 + 2 = 4, then 4 * 3 = 12</think>\n\nThe answer is 12."
    whole_r, whole_c = ThinkSplitter(starts_in_think).feed(text, final=True)
    for size in (1, 2, 3, 7):  # tags split across deltas must still be recognised
        sp = ThinkSplitter(starts_in_think)
        parts = [sp.feed(text[i : i + size]) for i in range(0, len(text), size)] + [sp.feed("", final=True)]
        r, c = "".join(p[0] for p in parts), "".join(p[1] for p in parts)
        assert (r, c) == (whole_r, whole_c)
    assert whole_r == "2 + 2 = 4, then 4 * 3 = 12" and whole_c == "The answer is 12."


def test_think_splitter_without_tags_is_all_content():
    sp = ThinkSplitter()
    assert sp.feed("plain <thi") == ("", "plain ")
    assert sp.feed("s is text", final=True) == ("", "<this is text")
