"""Benchmark: what the service layer adds to a streamed chat, next to the SDK reading the mock.

Starts the app under gunicorn (gthread, 1 worker, 8 threads; SQLite in a temp dir, migrations
applied, `MOCK_LLM_STREAM_DELAY=0`) and measures, interleaved run by run after a warm-up:

- direct:  the official SDK streaming from the mock (`/mock_llm/v1`) with a client built once;
- service: `stream_chat` in this process, against the same mock, as a view would call it:
  load the model by key, stream, then release the session.

Reports time to first token and total time (p50/p95/p99), the latency the service adds, and
CPU time per streamed request (`time.process_time` around each run; the server is another
process, so only client-side work is counted). Targets are DESIGN.md's "Performance targets".

Run from the project root: `python bench/stream_latency.py [--runs 300] [--warmup 30]`.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx2
import openai
from flask_migrate import upgrade
from sqlalchemy import select

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from webapp import create_app  # noqa: E402
from webapp.extensions import db  # noqa: E402
from webapp.models import LLMModel, LLMPreset, LLMProvider  # noqa: E402
from webapp.services import stream_chat  # noqa: E402

MOCK_PREFIX = "/mock_llm/v1"
SECRET_KEY = "bench-secret-key"
ENCRYPTION_KEY = "bench-encryption-key-0123456789"
# ~160 characters: the mock's ~200-character reply comes back in 11 content deltas.
PROMPT = "Summarise the benefits of streaming replies for a chat page, in two sentences. " * 2
REPLY = re.compile(r"Mock response \(model=mock\): .+ \[#[0-9a-f]{8}\]")
PRESET_OPTIONS = {"temperature": 0.0}
TARGETS_MS = {"added ttft p50": 2.0, "added total p50": 4.0, "service cpu p50": 4.0}


@dataclass
class Samples:
    """Per-run measurements of one mode, in milliseconds."""

    ttft: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def add(self, ttft: float, total: float, cpu: float) -> None:
        self.ttft.append(ttft * 1000)
        self.total.append(total * 1000)
        self.cpu.append(cpu * 1000)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def gunicorn(workdir: Path, database_url: str) -> Iterator[str]:
    """The app under gunicorn gthread on a free loopback port; yields its base URL."""
    port = free_port()
    env = {
        **os.environ,
        "MODELDESK_ENV": "test",
        "DATABASE_URL": database_url,
        "SECRET_KEY": SECRET_KEY,
        "MODELDESK_ENCRYPTION_KEY": ENCRYPTION_KEY,
        "MOCK_LLM_STREAM_DELAY": "0",
        "HOME": str(workdir),
    }
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--no-control-socket",
        "-k",
        "gthread",
        "--threads",
        "8",
        "-w",
        "1",
        "-b",
        f"127.0.0.1:{port}",
        "wsgi:app",
    ]
    log = workdir / "gunicorn.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, cwd=PROJECT_ROOT, env=env, stdout=output, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, process, log)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"gunicorn exited:\n{log.read_text()}")
        try:
            if httpx2.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx2.TransportError:
            time.sleep(0.1)
    raise SystemExit(f"gunicorn did not come up:\n{log.read_text()}")


def create_mock_model(server_url: str) -> None:
    """The mock provider, model and default preset, as the seeds make them."""
    provider = LLMProvider(name="Mock (Local)", base_url=server_url, api_prefix=MOCK_PREFIX)
    model = LLMModel(
        llm_provider=provider,
        model="mock",
        name="Mock",
        key="mock",
        enabled=True,
        supports_streaming=True,
    )
    preset = LLMPreset(
        llm_model=model, key="default", name="Default", llm_options_overrides=PRESET_OPTIONS
    )
    db.session.add_all([provider, model, preset])
    db.session.commit()
    db.session.remove()


def direct_run(client: openai.OpenAI) -> tuple[float, float, float, str]:
    """One streamed reply read with the SDK; the same request body the service sends."""
    cpu_start = time.process_time()
    start = time.perf_counter()
    ttft = 0.0
    pieces: list[str] = []
    with client.chat.completions.create(
        model="mock",
        messages=[{"role": "user", "content": PROMPT}],
        stream=True,
        stream_options={"include_usage": True},
        **PRESET_OPTIONS,
    ) as stream:
        for chunk in stream:
            for choice in chunk.choices:
                if choice.delta and choice.delta.content:
                    if not pieces:
                        ttft = time.perf_counter() - start
                    pieces.append(choice.delta.content)
    total = time.perf_counter() - start
    return ttft, total, time.process_time() - cpu_start, "".join(pieces)


def service_run() -> tuple[float, float, float, str]:
    """One streamed reply through stream_chat, from the model lookup to the `done` event."""
    cpu_start = time.process_time()
    start = time.perf_counter()
    ttft = 0.0
    content = ""
    model = db.session.scalars(select(LLMModel).where(LLMModel.key == "mock")).one()
    for event in stream_chat(model, user_text=PROMPT):
        if event.type == "delta":
            if not ttft:
                ttft = time.perf_counter() - start
        elif event.type == "done":
            assert event.result is not None
            content = event.result.value["assistant_message"]["content"]
        else:
            assert event.result is not None
            raise SystemExit(f"service run failed: {event.result.code} {event.result.errors}")
    total = time.perf_counter() - start
    db.session.remove()
    return ttft, total, time.process_time() - cpu_start, content


def measure(
    modes: dict[str, Callable[[], tuple[float, float, float, str]]], runs: int, warmup: int
) -> dict[str, Samples]:
    """Interleave the modes run by run (alternating which goes first) to cancel drift."""
    names = list(modes)
    samples = {name: Samples() for name in names}
    for index in range(warmup + runs):
        order = names if index % 2 == 0 else names[::-1]
        for name in order:
            ttft, total, cpu, reply = modes[name]()
            if not REPLY.fullmatch(reply):
                raise SystemExit(f"{name}: unexpected reply {reply!r}")
            if index >= warmup:
                samples[name].add(ttft, total, cpu)
    return samples


def percentiles(values: list[float]) -> tuple[float, float, float]:
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return cuts[49], cuts[94], cuts[98]


def report(samples: dict[str, Samples], runs: int, warmup: int) -> None:
    direct, service = samples["direct"], samples["service"]
    print(
        f"{runs} runs per mode, interleaved, after {warmup} warm-up runs each; "
        "gunicorn gthread (1 worker, 8 threads), MOCK_LLM_STREAM_DELAY=0"
    )
    print(f"{'(ms)':<26}{'p50':>9}{'p95':>9}{'p99':>9}")
    rows: list[tuple[str, tuple[float, float, float]]] = []
    for metric in ("ttft", "total", "cpu"):
        d = percentiles(getattr(direct, metric))
        s = percentiles(getattr(service, metric))
        rows += [
            (f"{metric} direct", d),
            (f"{metric} service", s),
            (f"{metric} added", (s[0] - d[0], s[1] - d[1], s[2] - d[2])),
        ]
    for label, (p50, p95, p99) in rows:
        print(f"{label:<26}{p50:>9.2f}{p95:>9.2f}{p99:>9.2f}")
    paired = {
        metric: statistics.median(
            s - d for s, d in zip(getattr(service, metric), getattr(direct, metric), strict=True)
        )
        for metric in ("ttft", "total", "cpu")
    }
    print(
        "median of paired differences (service − direct): "
        + ", ".join(f"{metric} {value:+.2f}" for metric, value in paired.items())
    )
    measured = {
        "added ttft p50": percentiles(service.ttft)[0] - percentiles(direct.ttft)[0],
        "added total p50": percentiles(service.total)[0] - percentiles(direct.total)[0],
        "service cpu p50": percentiles(service.cpu)[0],
    }
    for name, target in TARGETS_MS.items():
        verdict = "ok" if measured[name] <= target else "MISSED"
        print(f"target {name} ≤ {target:g} ms: {measured[name]:.2f} ms {verdict}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300, help="measured runs per mode")
    parser.add_argument("--warmup", type=int, default=30, help="discarded runs per mode")
    args = parser.parse_args(argv)
    if args.runs < 2:
        parser.error("--runs must be at least 2")

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
                create_mock_model(url)
                with openai.OpenAI(
                    base_url=url + MOCK_PREFIX, api_key="no-key", max_retries=0, timeout=30
                ) as client:
                    samples = measure(
                        {"direct": lambda: direct_run(client), "service": service_run},
                        args.runs,
                        args.warmup,
                    )
            db.engine.dispose()
    report(samples, args.runs, args.warmup)


if __name__ == "__main__":
    main()
