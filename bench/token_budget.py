"""Benchmark: the token-budget check on a ~100k-token prompt vs one bare `encoding.encode`.

Target (DESIGN.md, performance): the budget check costs at most 1.1x a bare encode of the
same text. Run from the project root: `python bench/token_budget.py [--repeat N]`.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from webapp.llm.budget import check_prompt_budget
from webapp.llm.tokenizer import encoding_for, load_encoding

TARGET_RATIO = 1.1
PROMPT_TOKENS = 100_000

# Varied text (prose, code, numbers, CJK, markup) so the tokenizer sees a realistic mix.
PARAGRAPHS = [
    "The quarterly report shows revenue grew 12.4% to $3,141,592 while costs fell; "
    "management expects the trend to continue through 2027, barring supply shocks.\n",
    "def fibonacci(n: int) -> list[int]:\n    seq = [0, 1]\n    while len(seq) < n:\n"
    "        seq.append(seq[-1] + seq[-2])\n    return seq[:n]\n\n",
    "请将以下内容翻译成英文：今天天气很好，我们去公园散步吧。日本語の文も少し混ぜます。\n",  # noqa: RUF001
    "<textarea id='draft'>Dear team, please review the <b>draft</b> by Friday.</textarea>\n",
    "| id | name | score |\n|----|------|-------|\n| 1 | Ada | 97.5 |\n| 2 | Linus | 88 |\n",
    # No special-token strings: a bare default `encode` would raise on them.
    "Meeting notes 2026-11-24: ship v2.3 (#4821), rotate keys, e-mail ops@example.com.\n",
]


def build_messages(model_hint: str) -> list[dict[str, str]]:
    """A chat of several turns whose contents total about PROMPT_TOKENS tokens."""
    encoding = encoding_for(model_hint)
    block = "".join(PARAGRAPHS)
    block_tokens = len(encoding.encode_ordinary(block))
    turns = 8
    per_turn = max(PROMPT_TOKENS // (turns * block_tokens), 1)
    roles = ["user", "assistant"]
    messages = [{"role": "system", "content": "You are a careful assistant."}]
    for turn in range(turns):
        # The turn number makes each message distinct, as real history is.
        content = f"Turn {turn}.\n" + block * per_turn
        messages.append({"role": roles[turn % 2], "content": content})
    return messages


def interleaved_timings(
    runs: dict[str, Callable[[], object]], repeat: int
) -> dict[str, list[float]]:
    """Wall times of `repeat` calls of each, taken in rounds (one call of each per round, the
    order turning each round) after one warm-up call each: this box's speed drifts by tens of
    percent over seconds, and a drift then lands on every call alike instead of on whichever
    was timed last."""
    for run in runs.values():
        run()
    names = list(runs)
    timings: dict[str, list[float]] = {name: [] for name in names}
    for round_number in range(repeat):
        turn = round_number % len(names)
        for name in names[turn:] + names[:turn]:
            start = time.perf_counter()
            runs[name]()
            timings[name].append(time.perf_counter() - start)
    return timings


def paired_ratio(numerators: list[float], denominators: list[float]) -> float:
    """The median of each round's ratio."""
    return statistics.median(n / d for n, d in zip(numerators, denominators, strict=True))


def bench(model_hint: str, encoding_name: str, repeat: int) -> float:
    """Time both calls for one model; print the figures and return the ratio."""
    encoding = load_encoding(encoding_name)
    messages = build_messages(model_hint)
    text = "".join(message["content"] for message in messages)

    def budget_check() -> object:
        return check_prompt_budget(
            messages,
            context_window_tokens=200_000,
            message_overhead_tokens=4,
            reserve_tokens=4_096,
            model_hint=model_hint,
        )

    def bare_encode() -> object:
        return encoding.encode(text)

    def bare_encode_ordinary() -> object:
        return encoding.encode_ordinary(text)

    budget = budget_check()
    timed = interleaved_timings(
        {"encode": bare_encode, "ordinary": bare_encode_ordinary, "check": budget_check}, repeat
    )
    median = {name: statistics.median(values) for name, values in timed.items()}
    ratio = paired_ratio(timed["check"], timed["encode"])
    print(
        f"{model_hint} ({encoding_name}): {len(messages)} messages, "
        f"{budget.estimated_tokens:,} estimated tokens ({len(bare_encode()):,} in one encode)\n"
        f"  bare encode          {median['encode'] * 1000:8.2f} ms\n"
        f"  bare encode_ordinary {median['ordinary'] * 1000:8.2f} ms\n"
        f"  budget check         {median['check'] * 1000:8.2f} ms  "
        f"ratio to encode {ratio:.3f} ({'OK' if ratio <= TARGET_RATIO else 'OVER TARGET'}), "
        f"to encode_ordinary {paired_ratio(timed['check'], timed['ordinary']):.3f} "
        "(ratios: the median of each round's)"
    )
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=40, help="rounds of timed calls (median)")
    args = parser.parse_args()
    print(f"{args.repeat} interleaved rounds; target: check <= {TARGET_RATIO} x encode")
    ratios = [
        bench("gpt-4", "cl100k_base", args.repeat),
        bench("openai/gpt-4o:nitro", "o200k_base", args.repeat),
    ]
    print(f"worst ratio {max(ratios):.3f}")


if __name__ == "__main__":
    main()
