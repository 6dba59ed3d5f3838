"""Side by side, in one sitting: ModelDesk's gateway and LiteLLM proxy in front of one stub.

Runs the shared harness (`../shared/bench/litellm/bench.py`: the official SDK straight to the
stub vs through a relay, alternating, then N concurrent streams) against:
  B1  ModelDesk's `/v1` under gunicorn (one worker), a provider pointing at the stub, an app key;
  B2  LiteLLM proxy (one worker) on the same stub, when `--litellm` names its executable.
Each relay runs alone (the other is stopped) so they never share the two cores.

    python bench/gateway_vs_litellm.py --harness ../shared/bench/litellm \
        [--litellm /path/to/litellm-venv/bin/litellm] [--n 300] [--conc 50,200]

Set-up of LiteLLM (PyPI only): see the harness README.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx2

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load_streams import ROOT, free_port, prepare_database, start_gunicorn

MODEL_KEY = "stub-model"
LITELLM_KEY = "sk-anchor-1234"


def wait_ready(url: str, headers: dict[str, str] | None = None, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx2.get(url, headers=headers, timeout=2).status_code == 200:
                return
        except httpx2.TransportError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{url} did not come up")


def stop(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def start_stub(harness: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as output:
        return subprocess.Popen(
            [sys.executable, str(harness / "stub.py"), "--port", str(port)],
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def setup_modeldesk(env: dict[str, str], stub_url: str) -> str:
    """Migrate, add a provider on the stub with one keyed model, create an app key: its secret."""
    script = (
        "from flask_migrate import upgrade\n"
        "from webapp import create_app\n"
        "from webapp.extensions import db\n"
        "from webapp.models import LLMModel, LLMProvider\n"
        "from webapp.services.app_keys import create_key\n"
        "app = create_app()\n"
        "with app.app_context():\n"
        "    upgrade()\n"
        f"    p = LLMProvider(name='Stub', base_url={stub_url!r}, api_prefix='/v1',\n"
        "                    api_key='sk-dummy-upstream')\n"
        f"    db.session.add(LLMModel(llm_provider=p, model='stub-model', name='Stub',\n"
        f"                            key={MODEL_KEY!r}, enabled=True, supports_streaming=True))\n"
        "    db.session.commit()\n"
        "    print(create_key('bench').secret)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**os.environ, **env},
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip().splitlines()[-1]


def run_harness(harness: Path, args: argparse.Namespace, relay: list[str], out: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            str(harness / "bench.py"),
            "--stub",
            args.stub_url,
            "--n",
            str(args.n),
            "--warmup",
            str(args.warmup),
            "--conc",
            args.conc,
            "--rounds",
            str(args.rounds),
            "--out",
            str(out),
            *relay,
        ],
        check=True,
    )


def bench_modeldesk(harness: Path, args: argparse.Namespace, scratch: Path) -> None:
    database_url, created = prepare_database(args.database_url)
    env = {
        "MODELDESK_ENV": "development",
        "SECRET_KEY": "bench-secret",
        "MODELDESK_ENCRYPTION_KEY": "bench-key",
        "DATABASE_URL": database_url,
        "WEB_CONCURRENCY": "1",
    }
    try:
        secret = setup_modeldesk(env, args.stub_url.removesuffix("/v1"))
        port = free_port()
        server = start_gunicorn(port, env, threads=args.threads, log=scratch / "gunicorn.log")
        try:
            url = f"http://127.0.0.1:{port}/v1"
            wait_ready(f"{url}/models", {"Authorization": f"Bearer {secret}"})
            print(f"\n## ModelDesk gateway (gunicorn pid {server.pid}, 1 worker)", flush=True)
            relay = ["--proxy", url, "--proxy-key", secret, "--proxy-model", MODEL_KEY]
            run_harness(
                harness, args, [*relay, "--proxy-pid", str(server.pid)], scratch / "md.json"
            )
        finally:
            stop(server)
    finally:
        if created:
            subprocess.run(["dropdb", "-h", "127.0.0.1", "-U", "postgres", created], check=False)


def bench_litellm(harness: Path, args: argparse.Namespace, scratch: Path) -> None:
    config = scratch / "litellm.yaml"
    config.write_text(
        (harness / "config.yaml").read_text().replace("http://127.0.0.1:8001/v1", args.stub_url)
    )
    port = free_port()
    with (scratch / "litellm.log").open("wb") as output:
        proxy = subprocess.Popen(
            [
                args.litellm,
                *("--config", str(config), "--host", "127.0.0.1", "--port", str(port)),
                *("--num_workers", "1"),
            ],
            env={
                **os.environ,
                "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                "LITELLM_LOG": "ERROR",
                "LITELLM_MODE": "PRODUCTION",
            },
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_ready(f"http://127.0.0.1:{port}/health/liveliness")
        print(f"\n## LiteLLM proxy (pid {proxy.pid}, 1 worker)", flush=True)
        relay = ["--proxy", f"http://127.0.0.1:{port}/v1", "--proxy-key", LITELLM_KEY]
        run_harness(harness, args, [*relay, "--proxy-pid", str(proxy.pid)], scratch / "ll.json")
    finally:
        stop(proxy)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--harness", type=Path, default=ROOT.parent / "shared/bench/litellm")
    parser.add_argument("--litellm", default=None, help="LiteLLM proxy's executable.")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--threads", type=int, default=256, help="gunicorn threads per worker")
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--conc", default="50,200")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    harness = args.harness.resolve()
    scratch = Path(tempfile.mkdtemp(prefix="modeldesk-gw-bench-"))
    stub_port = free_port()
    args.stub_url = f"http://127.0.0.1:{stub_port}/v1"
    stub = start_stub(harness, stub_port, scratch / "stub.log")
    try:
        wait_ready(f"{args.stub_url}/models")
        bench_modeldesk(harness, args, scratch)
        if args.litellm:
            bench_litellm(harness, args, scratch)
    finally:
        stop(stub)
    print(f"\nlogs and JSON in {scratch}")


if __name__ == "__main__":
    main()
