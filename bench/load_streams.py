"""Load benchmark: N concurrent streaming chats through ModelDesk under gunicorn.

Two gunicorn instances on loopback: ModelDesk (the app under test) and the mock LLM (the
same code with the mock enabled, standing in for a provider, stream delay 0.02 s). For each
N it opens N chat streams at once through the real chat routes (sign-in, POST the message,
GET the SSE stream) and, for comparison, N streams straight from the mock. It reports
completed / dropped streams, time-to-first-token p50/p95, the ModelDesk processes' memory
growth per open stream, and whether every reassembled reply is byte-identical to the reply
ModelDesk received from the mock (as saved in the transcript), and the CPU time per streamed
reply spent by ModelDesk's processes and by PostgreSQL's while the streams ran (from /proc).

    python bench/load_streams.py [--streams 50 200 500] [--database-url postgresql://…]
                                 [--profile]

Without --database-url it creates a throw-away PostgreSQL database on 127.0.0.1:5432 when
one answers, else uses SQLite.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx2
import stack_profile
from sqlalchemy import bindparam, create_engine, text

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "load-benchmark-password"
PROMPT = "Tell me about streaming under load, please."
STREAM_URL = re.compile(r"/messages/(\d+)/stream")
DELTA = re.compile(r"^event: delta\ndata: (.*)$", re.S)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(
    port: int, env: dict[str, str], threads: int, log: Path
) -> subprocess.Popen[bytes]:
    settings = {
        **os.environ,
        **env,
        "MODELDESK_BIND": f"127.0.0.1:{port}",
        "MODELDESK_THREADS": str(threads),
        "MODELDESK_LOG_LEVEL": "warning",
    }
    with log.open("wb") as output:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--no-control-socket",
                "--access-logfile",
                "/dev/null",
                "wsgi:app",
            ],
            cwd=ROOT,
            env=settings,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_up(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx2.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx2.TransportError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{url} did not come up")


def process_tree(root_pid: int) -> list[int]:
    """A process and its children (gunicorn master + workers)."""
    pids = [root_pid]
    children = Path(f"/proc/{root_pid}/task/{root_pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    return pids


def database_backends(database_url: str) -> list[int]:
    """The PostgreSQL backends serving the benchmark's database (none on SQLite)."""
    if not database_url.startswith("postgresql"):
        return []
    engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.connect() as connection:
        query = "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        pids = list(connection.scalars(text(query)))
    engine.dispose()
    return pids


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (0 for one that is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def cpu_used(before: dict[int, float], pids: list[int]) -> float:
    """CPU seconds these processes used since `before` (new ones: all of theirs; one that
    ended meanwhile is lost, not counted negative)."""
    return sum(max(0.0, cpu_seconds(pid) - before.get(pid, 0.0)) for pid in set(pids))


def rss_kib(root_pid: int) -> int:
    """Resident memory of a process and its children (gunicorn master + workers)."""
    pids = process_tree(root_pid)
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


def prepare_database(url: str | None) -> tuple[str, str | None]:
    if url:
        return url, None
    if (
        shutil.which("pg_isready")
        and subprocess.run(["pg_isready", "-h", "127.0.0.1", "-q"], check=False).returncode == 0
    ):
        name = f"modeldesk_bench_{os.getpid()}"
        subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", name], check=True)
        return f"postgresql://postgres@127.0.0.1:5432/{name}", name
    return f"sqlite:///{tempfile.mkdtemp(prefix='modeldesk-load-')}/load.sqlite3", None


def setup_app(env: dict[str, str], mock_url: str) -> None:
    """Migrate, create the user and a mock-backed model (as an operator would)."""
    script = (
        "from flask_migrate import upgrade\n"
        "from webapp import create_app\n"
        "from webapp.extensions import db\n"
        "from webapp.models import LLMModel, LLMProvider\n"
        "from webapp.services.users import create_user\n"
        "app = create_app()\n"
        "with app.app_context():\n"
        "    upgrade()\n"
        f"    create_user('load@example.com', {PASSWORD!r}, role='member')\n"
        f"    p = LLMProvider(name='Mock', base_url={mock_url!r}, api_prefix='/mock_llm/v1',\n"
        "                    requires_api_key=False)\n"
        "    db.session.add(LLMModel(llm_provider=p, model='mock', name='Mock', key='mock',\n"
        "                            enabled=True, supports_streaming=True))\n"
        "    db.session.commit()\n"
    )
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, env={**os.environ, **env}, check=True)


@dataclass
class StreamResult:
    ok: bool
    ttft: float | None = None
    text: str = ""
    message_id: int | None = None
    error: str = ""
    pieces: list[str] = field(default_factory=list)


async def sign_in(client: httpx2.AsyncClient) -> None:
    page = await client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token, "no CSRF token on the sign-in page"
    client.headers["X-CSRFToken"] = token.group(1)
    response = await client.post(
        "/login",
        data={"email": "load@example.com", "password": PASSWORD, "csrf_token": token.group(1)},
    )
    assert response.status_code in (302, 303), response.status_code
    # Signing in starts a new session, and with it a new CSRF token.
    home = await client.get("/")
    token = re.search(r'name="csrf_token" value="([^"]+)"', home.text)
    assert token, "no CSRF token on the home page"
    client.headers["X-CSRFToken"] = token.group(1)


async def post_message(client: httpx2.AsyncClient, model_id: int) -> int:
    created = await client.post("/c/new", headers={"HX-Request": "true"})
    conversation = re.search(
        r"/c/(\d+)",
        created.headers.get("HX-Location", "") + created.headers.get("Location", "") + created.text,
    )
    assert conversation, f"no conversation created: {created.status_code}"
    sent = await client.post(
        f"/c/{conversation.group(1)}/messages",
        data={"llm_model_id": model_id, "content": PROMPT},
        headers={"HX-Request": "true"},
    )
    found = STREAM_URL.search(sent.text)
    assert found, f"no stream for the message: {sent.status_code} {sent.text[:200]}"
    return int(found.group(1))


async def read_chat_stream(
    client: httpx2.AsyncClient, message_id: int, start: asyncio.Event
) -> StreamResult:
    await start.wait()
    began = time.perf_counter()
    result = StreamResult(ok=False, message_id=message_id)
    try:
        async with client.stream("GET", f"/messages/{message_id}/stream", timeout=120) as response:
            buffer = ""
            async for chunk in response.aiter_text():
                buffer += chunk
                while "\n\n" in buffer:
                    frame, buffer = buffer.split("\n\n", 1)
                    delta = DELTA.match(frame)
                    if delta:
                        if result.ttft is None:
                            result.ttft = time.perf_counter() - began
                        result.pieces.append(
                            html.unescape(
                                "\n".join(
                                    line.removeprefix("data: ")
                                    for line in delta.group(1).split("\n")
                                )
                            )
                        )
                    elif frame.startswith("event: end"):
                        result.ok = "status-error" not in frame and "busy" not in frame.lower()
                        if not result.ok:
                            result.error = "end frame reports an error"
    except httpx2.HTTPError as error:
        result.error = f"{type(error).__name__}: {error}"
    result.text = "".join(result.pieces)
    return result


async def read_direct_stream(client: httpx2.AsyncClient, start: asyncio.Event) -> StreamResult:
    await start.wait()
    began = time.perf_counter()
    result = StreamResult(ok=False)
    body = {"model": "mock", "stream": True, "messages": [{"role": "user", "content": PROMPT}]}
    try:
        async with client.stream(
            "POST", "/mock_llm/v1/chat/completions", json=body, timeout=120
        ) as response:
            async for line in response.aiter_lines():
                if line.startswith("data: ") and '"content"' in line and result.ttft is None:
                    result.ttft = time.perf_counter() - began
                if line == "data: [DONE]":
                    result.ok = True
    except httpx2.HTTPError as error:
        result.error = f"{type(error).__name__}: {error}"
    return result


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def run_level(
    app_url: str,
    mock_url: str,
    streams: int,
    app_pid: int,
    database_url: str,
    report: bool = True,
    profile: Path | None = None,
) -> None:
    limits = httpx2.Limits(max_connections=streams + 10, max_keepalive_connections=streams + 10)
    async with httpx2.AsyncClient(base_url=mock_url, limits=limits) as direct:
        start = asyncio.Event()
        tasks = [asyncio.create_task(read_direct_stream(direct, start)) for _ in range(streams)]
        await asyncio.sleep(0.2)
        start.set()
        direct_results = await asyncio.gather(*tasks)
    async with httpx2.AsyncClient(base_url=app_url, limits=limits, timeout=60) as client:
        await sign_in(client)
        model_id = 1
        ids = [await post_message(client, model_id) for _ in range(streams)]
        idle = rss_kib(app_pid)
        start = asyncio.Event()
        tasks = [asyncio.create_task(read_chat_stream(client, i, start)) for i in ids]
        peak = idle
        spies = stack_profile.record(process_tree(app_pid)[1:], profile) if profile else []
        await asyncio.sleep(1.0 if spies else 0.2)  # py-spy attaches to every worker first
        app_pids, backends = process_tree(app_pid), database_backends(database_url)
        before = {pid: cpu_seconds(pid) for pid in (*app_pids, *backends)}
        start.set()
        while not all(task.done() for task in tasks):
            peak = max(peak, rss_kib(app_pid))
            await asyncio.sleep(0.05)
        app_cpu = cpu_used(before, app_pids)
        if spies:
            stack_profile.stop(spies)
        # The pool may have opened more backends meanwhile: they count from their start.
        database_cpu = cpu_used(before, backends + database_backends(database_url))
        results = [task.result() for task in tasks]
    engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    query = text(
        "SELECT id, content, error_code, error_text FROM chat_messages WHERE id IN :ids"
    ).bindparams(bindparam("ids", expanding=True))
    with engine.connect() as connection:
        rows = connection.execute(query, {"ids": ids}).all()
    engine.dispose()
    saved = {row.id: row.content for row in rows}
    # A reply whose end frame reported an error says which in the transcript.
    reasons = {row.id: f"{row.error_code}: {row.error_text}" for row in rows if row.error_code}
    for result in results:
        if not result.ok and result.message_id in reasons:
            result.error = f"{result.error} ({reasons[result.message_id]})"
    if not report:
        return
    completed = [r for r in results if r.ok]
    identical = sum(
        1
        for r in completed
        if saved.get(r.message_id) == r.text and r.text.startswith("Mock response (model=mock): ")
    )
    direct_ttft = [r.ttft for r in direct_results if r.ttft is not None]
    app_ttft = [r.ttft for r in completed if r.ttft is not None]
    errors = sorted({r.error for r in results if not r.ok})[:3]
    print(
        f"{streams:>5} {len(completed):>9} {streams - len(completed):>7} {identical:>9} "
        f"{percentile(direct_ttft, 0.5) * 1000:>11.1f} {percentile(app_ttft, 0.5) * 1000:>9.1f} "
        f"{percentile(app_ttft, 0.95) * 1000:>9.1f} "
        f"{percentile(app_ttft, 0.5) / percentile(direct_ttft, 0.5):>6.2f} "
        f"{(peak - idle) / streams:>10.0f} "
        f"{app_cpu * 1000 / streams:>7.1f} {database_cpu * 1000 / streams:>6.1f}"
    )
    for error in errors:
        print(f"      dropped: {error}")
    if profile is not None:
        print(stack_profile.summary(profile))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, nargs="+", default=[50, 200, 500])
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--profile",
        action="store_true",
        help="sample ModelDesk's processes with py-spy while the streams run (the `bench` "
        "extra) and print where their CPU went; sampling costs CPU, so the figures of a "
        "profiled run are not the benchmark's",
    )
    args = parser.parse_args()
    database_url, created_db = prepare_database(args.database_url)
    folder = Path(tempfile.mkdtemp(prefix="modeldesk-load-"))
    largest = max(args.streams)
    # The kernel does not share connections evenly between workers: size each one for all of
    # them, so an uneven share is not refused as busy.
    threads = largest + 16
    # Development only so the session cookie is not Secure-only over plain-HTTP loopback; the
    # server is the production one (gunicorn.conf.py, gthread).
    common = {
        "MODELDESK_ENV": "development",
        "SECRET_KEY": "load-secret",
        "MODELDESK_ENCRYPTION_KEY": "load-key",
        "DATABASE_URL": database_url,
        "HOME": str(folder),
        "MODELDESK_DB_POOL_SIZE": "10",
    }
    mock_port, app_port = free_port(), free_port()
    mock_url, app_url = f"http://127.0.0.1:{mock_port}", f"http://127.0.0.1:{app_port}"
    setup_app(common, mock_url)
    mock = start_gunicorn(
        mock_port,
        {
            **common,
            "MOCK_LLM_ENABLED": "1",
            "MOCK_LLM_STREAM_DELAY": "0.02",
            "WEB_CONCURRENCY": "1",
        },
        largest + 16,
        folder / "mock.log",
    )
    app = start_gunicorn(
        app_port,
        {
            **common,
            "WEB_CONCURRENCY": str(args.workers),
            "MODELDESK_MAX_STREAMS": str(threads - 8),
            # Every stream is one user's here: the per-user cap would refuse all but three.
            "MODELDESK_MAX_STREAMS_PER_USER": str(largest),
        },
        threads,
        folder / "app.log",
    )
    try:
        wait_up(mock_url)
        wait_up(app_url)
        print(
            f"ModelDesk: gunicorn gthread, {args.workers} workers x {threads} threads; "
            f"mock: separate gunicorn, stream delay 0.02 s; database: {database_url.split(':')[0]}"
        )
        print(
            f"{'N':>5} {'completed':>9} {'dropped':>7} {'identical':>9} {'direct p50':>11} "
            f"{'TTFT p50':>9} {'TTFT p95':>9} {'ratio':>6} {'KiB/stream':>10} "
            f"{'app ms':>7} {'db ms':>6}"
        )
        print("      (app ms, db ms: CPU per streamed reply of the ModelDesk processes and of")
        print("       the PostgreSQL backends of its database while the streams ran)")
        # Warm-up: every worker imports, connects and builds its provider client once.
        asyncio.run(run_level(app_url, mock_url, 8 * args.workers, app.pid, database_url, False))
        for streams in args.streams:
            profile = folder / f"profile-{streams}.txt" if args.profile else None
            asyncio.run(
                run_level(app_url, mock_url, streams, app.pid, database_url, profile=profile)
            )
    finally:
        for process in (app, mock):
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=60)
        if created_db:
            subprocess.run(
                ["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", created_db],
                check=False,
            )


if __name__ == "__main__":
    main()
