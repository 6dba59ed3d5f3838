"""Benchmark: what the gateway (`/v1`) adds to a streamed chat, next to the SDK reading the
upstream directly.

Starts the app under gunicorn (gthread, 1 worker, 8 threads; SQLite in a temp dir,
`MOCK_LLM_STREAM_DELAY=0`; see bench/stream_latency.py), creates a keyed model on the
upstream and an app key, then measures, interleaved run by run after a warm-up:

- direct:  the official SDK streaming from the upstream;
- gateway: the same SDK, same request, through `/v1/chat/completions` with the app key.

The upstream is the app's own mock (default) or `--upstream URL`, e.g. the LiteLLM harness's
stub (`python /work/shared/bench/litellm/stub.py --port 8001`, then
`--upstream http://127.0.0.1:8001/v1`). Reports time to first token and total time p50,
the latency added, and the server's CPU per streamed request (utime + stime of the gunicorn
processes, from /proc, per mode: the gateway mode minus the direct mode is what the gateway
costs when the upstream is the app's own mock).

The side-by-side run against LiteLLM proxy is `bench/gateway_vs_litellm.py`.

Run from the project root: `python bench/gateway_latency.py [--runs 300] [--warmup 30]`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import openai
from flask_migrate import upgrade

sys.path.insert(0, str(Path(__file__).resolve().parent))

from stream_latency import (
    ENCRYPTION_KEY,
    MOCK_PREFIX,
    PROMPT,
    SECRET_KEY,
    gunicorn,
    percentiles,
)

from webapp import create_app
from webapp.extensions import db
from webapp.models import LLMModel, LLMProvider
from webapp.services.app_keys import create_key

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
MESSAGES = [{"role": "user", "content": PROMPT}]


def process_tree(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as children:
                    todo += [int(child) for child in children.read().split()]
        except OSError:
            continue
    return found


def server_cpu_seconds() -> float:
    """CPU time of every process this script started (gunicorn's master and worker)."""
    total = 0
    for pid in process_tree(os.getpid())[1:]:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


def set_up(upstream: str | None, app_url: str) -> tuple[str, str]:
    """A provider on the upstream with a keyed model, and an app key: (model key, secret)."""
    if upstream:
        provider = LLMProvider(name="Bench stub", base_url=upstream, api_prefix="")
        model_id = "stub-model"
    else:
        provider = LLMProvider(name="Mock (Local)", base_url=app_url, api_prefix=MOCK_PREFIX)
        model_id = "mock"
    model = LLMModel(
        llm_provider=provider,
        model=model_id,
        name=model_id,
        key=model_id,
        enabled=True,
        supports_streaming=True,
    )
    db.session.add_all([provider, model])
    db.session.commit()
    created = create_key("bench")
    assert created.secret is not None, created.errors
    db.session.remove()
    return model_id, created.secret


def stream_once(client: openai.OpenAI, model: str) -> tuple[float, float]:
    start = time.perf_counter()
    ttft = 0.0
    with client.chat.completions.create(model=model, messages=MESSAGES, stream=True) as stream:
        for chunk in stream:
            if not ttft and chunk.choices and chunk.choices[0].delta.content:
                ttft = time.perf_counter() - start
    return ttft * 1000, (time.perf_counter() - start) * 1000


def measure(
    modes: dict[str, Callable[[], tuple[float, float]]], runs: int, warmup: int
) -> dict[str, dict[str, list[float]]]:
    samples = {name: {"ttft": [], "total": [], "cpu": []} for name in modes}
    for index in range(warmup + runs):
        order = list(modes) if index % 2 == 0 else list(modes)[::-1]
        for name in order:
            cpu_before = server_cpu_seconds()
            ttft, total = modes[name]()
            cpu = (server_cpu_seconds() - cpu_before) * 1000
            if index >= warmup:
                for metric, value in (("ttft", ttft), ("total", total), ("cpu", cpu)):
                    samples[name][metric].append(value)
    return samples


def report(samples: dict[str, dict[str, list[float]]], runs: int, upstream: str) -> None:
    print(f"{runs} streamed runs per mode, interleaved; upstream: {upstream}")
    direct, gateway = samples["direct"], samples["gateway"]
    for metric in ("ttft", "total"):
        d, g = percentiles(direct[metric])[0], percentiles(gateway[metric])[0]
        print(f"{metric:<6} p50  direct {d:8.2f} ms  gateway {g:8.2f} ms  added {g - d:+.2f} ms")
    # Clock ticks are 10 ms: the mean over all runs is the per-request figure.
    d_cpu, g_cpu = statistics.fmean(direct["cpu"]), statistics.fmean(gateway["cpu"])
    print(
        f"server cpu per streamed request: direct {d_cpu:.2f} ms, gateway {g_cpu:.2f} ms, "
        f"added {g_cpu - d_cpu:+.2f} ms"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300, help="measured runs per mode")
    parser.add_argument("--warmup", type=int, default=30, help="discarded runs per mode")
    parser.add_argument("--upstream", help="an OpenAI-compatible base URL (default: the mock)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="modeldesk-bench-") as tmp:
        workdir = Path(tmp)
        database_url = f"sqlite:///{workdir / 'bench.sqlite3'}"
        app = create_app(
            {
                "MODELDESK_ENV": "test",
                "SQLALCHEMY_DATABASE_URI": database_url,
                "SECRET_KEY": SECRET_KEY,
                "MODELDESK_ENCRYPTION_KEY": ENCRYPTION_KEY,
                "INSTANCE_PATH": str(workdir / "instance"),
            }
        )
        with app.app_context():
            upgrade()
            with gunicorn(workdir, database_url) as url:
                model, secret = set_up(args.upstream, url)
                upstream = args.upstream or url + MOCK_PREFIX
                direct = openai.OpenAI(base_url=upstream, api_key="no-key", max_retries=0)
                gateway = openai.OpenAI(base_url=url + "/v1", api_key=secret, max_retries=0)
                samples = measure(
                    {
                        "direct": lambda: stream_once(direct, model),
                        "gateway": lambda: stream_once(gateway, model),
                    },
                    args.runs,
                    args.warmup,
                )
            db.engine.dispose()
    report(samples, args.runs, upstream)


if __name__ == "__main__":
    main()
