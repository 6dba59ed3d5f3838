"""Where a server's CPU goes: py-spy samples of its processes, summed by area.

`record(pids, output)` starts `py-spy record` on processes (gunicorn's workers) in raw
(collapsed-stack) form; `summary(output)` reads the samples back and
prints two tables: by the library the sampled frame is in (the leaf), and by the ModelDesk
function that led there (the innermost `webapp` frame), so "sqlalchemy 12 %" can be read as
"12 % of the samples were in SQLAlchemy, 8 points of them under `claim_own`". py-spy leaves
idle threads (waiting on a lock or a socket) out, so the samples approximate CPU.

py-spy is in the project's `bench` extra: `pip install -e '.[bench]'`.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

# Frame file paths → the area a sample counts for, first match wins.
AREAS = (
    ("sqlalchemy/", "SQLAlchemy"),
    ("psycopg", "psycopg"),
    ("sqlite3", "sqlite3"),
    ("openai/", "openai SDK"),
    ("pydantic", "pydantic"),
    ("httpx/", "httpx"),
    ("httpcore/", "httpcore"),
    ("h11/", "h11"),
    ("gunicorn/", "gunicorn"),
    ("werkzeug/", "werkzeug"),
    ("flask_login/", "flask-login"),
    ("flask_wtf/", "flask-wtf"),
    ("flask/", "flask"),
    ("jinja2/", "jinja2"),
    ("markupsafe/", "markupsafe"),
    ("markdown_it/", "markdown"),
    ("nh3", "nh3"),
    ("itsdangerous/", "itsdangerous"),
    ("redis/", "redis"),
    ("tiktoken", "tiktoken"),
    ("webapp/", "webapp"),
    ("threading.py", "threading"),
    ("queue.py", "queue"),
    ("socket.py", "socket"),
    ("selectors.py", "selectors"),
    ("ssl.py", "ssl"),
    ("json/", "json"),
)
FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^:()]+)(?::\d+)?\)$")


def record(pids: list[int], output: Path, rate: int = 100) -> list[subprocess.Popen[bytes]]:
    """Start sampling each of `pids` (one py-spy each: gunicorn's workers) into
    `output`-<pid> files until `stop`."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return [
        subprocess.Popen(
            [
                # Ahead of the server it samples, or a saturated box starves the sampler.
                "nice",
                "-n",
                "-10",
                spy,
                "record",
                # Only the thread holding the GIL: what runs Python code, not what waits.
                "--gil",
                "--pid",
                str(pid),
                "--nonblocking",
                "--rate",
                str(rate),
                "--format",
                "raw",
                "--output",
                f"{output}-{pid}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=Path(f"{output}-{pid}.log").open("wb"),
        )
        for pid in pids
    ]


def stop(spies: list[subprocess.Popen[bytes]]) -> None:
    for spy in spies:
        spy.send_signal(signal.SIGINT)
    for spy in spies:
        spy.wait(timeout=60)


def _area(file: str) -> str:
    return next((name for part, name in AREAS if part in file), "other")


def _webapp_function(frames: list[tuple[str, str]]) -> str:
    """The innermost ModelDesk function of a stack (frames run outermost first)."""
    for function, file in reversed(frames):
        if file.startswith("webapp/") or "/webapp/" in file:
            module = file.rpartition("webapp/")[2].removesuffix(".py").replace("/", ".")
            return f"{module}.{function}"
    return "(outside webapp)"


def _parse(line: str) -> tuple[list[tuple[str, str]], int] | None:
    stack, _, count = line.rpartition(" ")
    if not stack or not count.isdigit():
        return None
    frames = []
    for frame in stack.split(";"):
        match = FRAME.match(frame)
        if match:
            frames.append((match["function"], match["file"]))
    return frames, int(count)


def summary(output: Path, top: int = 15) -> str:
    """The samples in the `output`-<pid> files by leaf area and by ModelDesk function, as
    text."""
    by_area: Counter[str] = Counter()
    by_function: Counter[str] = Counter()
    total = 0
    samples = [
        line
        for path in output.parent.glob(f"{output.name}-*[0-9]")
        for line in path.read_text().splitlines()
    ]
    for line in samples:
        parsed = _parse(line)
        if parsed is None or not parsed[0]:
            continue
        frames, count = parsed
        total += count
        by_area[_area(frames[-1][1])] += count
        by_function[_webapp_function(frames)] += count
    if not total:
        return "      profile: no samples (is py-spy allowed to trace this process?)"
    report = [f"      profile: {total} samples"]
    for title, counter in (
        ("by library (leaf frame)", by_area),
        ("by ModelDesk function", by_function),
    ):
        report.append(f"      {title}:")
        for name, count in counter.most_common(top):
            report.append(f"        {100 * count / total:5.1f} %  {name}")
    return "\n".join(report)
