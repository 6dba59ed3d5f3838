"""Benchmark: what following a reply from a second tab costs, per way of following.

Starts two gunicorn instances (one worker each) on a throw-away PostgreSQL database, with
Redis, for each reply bus (`redis`, `postgres`, and `none`: the follower reads the reply's
checkpoints). Per run, a first tab on instance 1 sends a message and streams the reply; the
moment its first piece arrives a second tab opens the same reply's stream — on instance 2
(another process: through the bus) or on instance 1 (the same process: in memory). Reported,
p50/p95 over the runs:

- first tab TTFT: time to first token of the tab that started the reply (unchanged by
  anyone following it, since nothing is published until someone follows);
- second tab attach: from opening the stream to its first text (the text so far);
- second tab lag: for every later piece, how long after the first tab it reached the
  second — the added time to each token for a followed reply. Without a bus the text
  arrives at the reply's checkpoints (every 5 s) or at its end, so there is no lag per piece.

Needs PostgreSQL on 127.0.0.1:5432 (trust auth) and Redis on 127.0.0.1:6379, as CI has them.
Run from the project root: `python bench/follow_latency.py [--runs 100]`.
"""

from __future__ import annotations

import argparse
import html
import statistics
import sys
import tempfile
import threading
import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import httpx2

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from tests.support.chat_http import read_frames, send  # noqa: E402
from tests.support.cluster import Cluster, ThrowawayDatabase  # noqa: E402
from tests.support.users import signed_in_at  # noqa: E402

PROMPT = "Summarise the benefits of streaming replies for a chat page, in two sentences. " * 2
# The mock's pause between pieces: a reply of ~11 pieces takes ~1 s, long enough to follow.
MOCK_STREAM_DELAY = 0.1
BUSES = ("redis", "postgres", "none")


@dataclass
class Samples:
    first_ttft: list[float] = field(default_factory=list)
    attach: list[float] = field(default_factory=list)
    lag: list[float] = field(default_factory=list)
    missed: int = 0  # the reply ended before the second tab attached (a loaded box)


@dataclass
class Timeline:
    """When a tab saw the reply reach each length."""

    opened: float = 0.0
    points: list[tuple[int, float]] = field(default_factory=list)


def read_stream(
    client: httpx2.Client,
    message_id: int,
    timeline: Timeline,
    first_piece: threading.Event | None = None,
) -> None:
    length = 0
    timeline.opened = time.perf_counter()
    with client.stream("GET", f"/messages/{message_id}/stream") as response:
        for frame in read_frames(response.iter_lines()):
            if frame.event != "delta":
                continue
            length += len(html.unescape(frame.data))
            timeline.points.append((length, time.perf_counter()))
            if first_piece is not None:
                first_piece.set()


def reached(timeline: Timeline, length: int) -> float:
    return next(at for seen, at in timeline.points if seen >= length)


def one_run(first: httpx2.Client, second: httpx2.Client, model_id: int, samples: Samples) -> None:
    message_id = send(first, model_id, PROMPT)
    started, writer, follower = threading.Event(), Timeline(), Timeline()
    reader = threading.Thread(target=read_stream, args=(first, message_id, writer, started))
    reader.start()
    assert started.wait(30), "the first tab got no text"
    read_stream(second, message_id, follower)
    reader.join(30)
    samples.first_ttft.append((writer.points[0][1] - writer.opened) * 1000)
    if not follower.points:
        samples.missed += 1
        return
    samples.attach.append((follower.points[0][1] - follower.opened) * 1000)
    for length, at in follower.points[1:]:
        samples.lag.append((at - reached(writer, length)) * 1000)


def percentiles(values: list[float]) -> str:
    if not values:
        return "n/a (no pieces after the first: the text arrived in one step)"
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"p50 {statistics.median(ordered):7.2f} ms   p95 {p95:7.2f} ms   (n={len(ordered)})"


def measure(bus: str, runs: int, warmup: int) -> dict[str, Samples]:
    database = ThrowawayDatabase()
    with tempfile.TemporaryDirectory() as workdir:
        cluster = Cluster(
            nginx="",
            workdir=Path(workdir),
            database=database,
            workers=1,
            mock_stream_delay=MOCK_STREAM_DELAY,
            extra_env={"MODELDESK_REPLY_BUS": bus},
        )
        try:
            cluster.set_up()
            cluster.start(with_nginx=False)
            (model_id,) = database.query("SELECT id FROM llm_models WHERE key = 'mock'")[0]
            one, two = cluster.instances
            results = {"another process": Samples(), "the same process": Samples()}
            with (
                closing(signed_in_at(one.url)) as first,
                closing(signed_in_at(two.url)) as elsewhere,
                closing(signed_in_at(one.url)) as here,
            ):
                for where, second in (("another process", elsewhere), ("the same process", here)):
                    for _ in range(warmup):
                        one_run(first, second, model_id, Samples())
                    for _ in range(runs):
                        one_run(first, second, model_id, results[where])
            return results
        finally:
            cluster.stop()
            database.drop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--bus", choices=BUSES, action="append")
    options = parser.parse_args()
    for bus in options.bus or BUSES:
        for where, samples in measure(bus, options.runs, options.warmup).items():
            if bus != BUSES[0] and where == "the same process":
                continue  # in memory whatever the bus: measured once
            label = f"second tab in {where}" + ("" if where == "the same process" else f" ({bus})")
            print(label)
            print(f"  first tab TTFT     {percentiles(samples.first_ttft)}")
            print(f"  second tab attach  {percentiles(samples.attach)}")
            print(f"  second tab lag     {percentiles(samples.lag)}")
            if samples.missed:
                print(f"  ({samples.missed} runs ended before the second tab attached)")


if __name__ == "__main__":
    main()
