"""Several gunicorn instances behind Debian's nginx, on one PostgreSQL database and one Redis:
the deployment the README describes, started from the shipped nginx configuration.

Everything listens on free loopback ports and lives in a temp folder; `Cluster.stop` ends
every process it started (and their children), also after a failed start.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import psycopg
import pytest
import redis

from tests.support.database import create_database, drop_database
from tests.support.net import free_port
from tests.support.users import MEMBER_EMAIL, PASSWORD
from tests.support.waiting import wait_for

PROJECT_ROOT = Path(__file__).resolve().parents[2]
NGINX_CONF = PROJECT_ROOT / "deploy" / "nginx" / "modeldesk.conf"
# The PostgreSQL server and Redis CI provides (.ci/run), trust auth; throw-away names on them.
POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/0"
INSTANCE_HEADER = "X-ModelDesk-Instance"
# Set by .ci/run: there a missing service fails the tests that need it instead of skipping.
REQUIRE_SERVICES = "MODELDESK_REQUIRE_SERVICES"
# Starting takes a few seconds per process on an idle box, many more on a loaded CI one.
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
# Settings of the developer's own shell must not leak into the instances.
APP_VARIABLES = ("MODELDESK_", "MOCK_LLM_", "RATELIMIT_", "DATABASE_URL", "REDIS_URL", "PORT")


def require_service(available: bool, reason: str) -> None:
    """Skip when a service is missing on a developer machine; fail where CI demands it."""
    if available:
        return
    if os.environ.get(REQUIRE_SERVICES, "").strip() in {"1", "true", "yes"}:
        pytest.fail(f"{reason} ({REQUIRE_SERVICES} is set: this test must run here)")
    pytest.skip(reason)


def nginx_binary() -> str | None:
    """Debian puts nginx in /usr/sbin, which a non-root PATH often lacks."""
    found = shutil.which("nginx")
    if found:
        return found
    return "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None


def postgres_answers() -> bool:
    try:
        with psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def redis_answers() -> bool:
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=3, socket_connect_timeout=3)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def require_cluster_services() -> str:
    """The nginx binary, once nginx, PostgreSQL and Redis are all known to be there."""
    nginx = nginx_binary()
    require_service(nginx is not None, "nginx is not installed (Debian: apt-get install nginx)")
    require_service(postgres_answers(), f"PostgreSQL does not answer at {POSTGRES_ADMIN_URL}")
    require_service(redis_answers(), f"Redis does not answer at {REDIS_URL}")
    assert nginx is not None
    return nginx


class ThrowawayDatabase:
    """A PostgreSQL database of its own, dropped (with its connections) by `drop`."""

    def __init__(self) -> None:
        self.name = f"modeldesk_cluster_{secrets.token_hex(6)}"
        self.url = create_database(POSTGRES_ADMIN_URL, self.name)

    def drop(self) -> None:
        drop_database(POSTGRES_ADMIN_URL, self.name)

    def query(self, statement: str, **params: Any) -> list[tuple[Any, ...]]:
        """Rows of one read, on a connection of its own (no pool to outlive the test)."""
        with psycopg.connect(self.url) as connection:
            return connection.execute(statement, params).fetchall()


@dataclass
class Process:
    """A child process started in a session of its own, so its children end with it."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def check_running(self) -> None:
        if self.popen.poll() is not None:
            raise AssertionError(f"{self.name} exited: {self.log.read_text(errors='replace')}")

    def terminate(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()

    def wait_ended(self) -> None:
        """Wait for the end `terminate` asked for; kill it (and its group) past the deadline."""
        try:
            self.popen.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(timeout=STOP_TIMEOUT)
        # Whatever the leader left behind (a gunicorn worker whose master was killed).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)


def start_process(name: str, command: list[str], env: dict[str, str], log: Path) -> Process:
    with log.open("wb") as output:
        popen = subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Process(name, popen, log)


def wait_healthy(url: str, process: Process) -> None:
    """Return once the server `process` runs answers /healthz at `url`; fail with its log if
    it exits first or stays silent for START_TIMEOUT."""

    def healthy() -> bool:
        process.check_running()
        try:
            return httpx2.get(f"{url}/healthz", timeout=2).status_code == 200
        except httpx2.TransportError:
            return False

    assert wait_for(healthy, timeout=START_TIMEOUT, interval=0.1), (
        f"{process.name} did not answer /healthz: {process.log.read_text(errors='replace')}"
    )


@dataclass
class Instance:
    name: str
    port: int
    process: Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Cluster:
    """`size` gunicorn instances of the app behind nginx at `url`, sharing a database and Redis.

    Build it, `start()` it, and `stop()` it in a `finally`.
    """

    nginx: str
    workdir: Path
    database: ThrowawayDatabase
    size: int = 2
    workers: int = 2
    mock_stream_delay: float = 0.0
    # Settings every instance gets on top of the cluster's own (e.g. MODELDESK_REPLY_BUS).
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    redis_prefix: str = field(default_factory=lambda: f"modeldesk-test-{secrets.token_hex(6)}")
    instances: list[Instance] = field(init=False)
    _nginx_process: Process | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.instances = [Instance(f"web-{n}", free_port()) for n in range(1, self.size + 1)]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def environment(self) -> dict[str, str]:
        """What every instance and every `flask` command runs with."""
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(APP_VARIABLES)}
        return {
            **inherited,
            "HOME": str(self.workdir),
            # Not production: its session cookie is Secure, which a plain-HTTP client (these
            # tests, nginx without TLS) never sends back.
            "MODELDESK_ENV": "test",
            "SECRET_KEY": self._secret("SECRET_KEY"),
            "MODELDESK_ENCRYPTION_KEY": self._secret("MODELDESK_ENCRYPTION_KEY"),
            "DATABASE_URL": self.database.url,
            "REDIS_URL": REDIS_URL,
            "MODELDESK_REDIS_PREFIX": self.redis_prefix,
            "MODELDESK_TRUSTED_PROXIES": "1",
            "MODELDESK_PASSWORD_HASH_METHOD": "pbkdf2:sha256:1",
            "MOCK_LLM_ENABLED": "1",
            # The mock provider answers from the first instance, not through nginx: there each
            # call to it would take a turn of the round-robin, and a client's own requests
            # would then always land on the same instance.
            "MOCK_LLM_BASE_URL": self.instances[0].url,
            "MOCK_LLM_STREAM_DELAY": str(self.mock_stream_delay),
            "WEB_CONCURRENCY": str(self.workers),
            "MODELDESK_THREADS": "8",
            # No reply is open when a test run stops them; gunicorn's stop takes longer the
            # longer this grace is, even for an idle instance.
            "MODELDESK_GRACEFUL_TIMEOUT": "2",
            **self.extra_env,
        }

    def _secret(self, name: str) -> str:
        # Derived from the run's prefix: the same for every process of this cluster only.
        return f"{name.lower()}-{self.redis_prefix}-0123456789abcdef"

    def flask(self, *commands: list[str]) -> list[str]:
        """Run `flask --app wsgi ARGS` for each ARGS on the cluster's database, in one process;
        their standard outputs. Fails the test at the first command that fails."""
        done = subprocess.run(
            [sys.executable, "-m", "tests.support.flask_commands", json.dumps(commands)],
            cwd=PROJECT_ROOT,
            env=self.environment(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, f"flask {commands}: {done.stdout}{done.stderr}"
        outcomes = json.loads(done.stdout)
        for outcome in outcomes:
            assert outcome["exit_code"] == 0, f"flask {outcome['args']}: {outcome}"
        assert len(outcomes) == len(commands)
        return [outcome["stdout"] for outcome in outcomes]

    def set_up(self) -> None:
        """Migrate, seed, and create the member the tests sign in as (before `start`)."""
        self.flask(
            ["db", "upgrade"],
            ["seed"],
            ["users", "create", "--password", PASSWORD, MEMBER_EMAIL],
        )

    def start(self, *, with_nginx: bool = True) -> None:
        """Start the instances and nginx; return once each instance answers on its own port,
        and nginx in front of them (without nginx: the instances alone, on their ports)."""
        for instance in self.instances:
            instance.process = self._start_instance(instance)
        if with_nginx:
            self._nginx_process = self._start_nginx()
        for instance in self.instances:
            assert instance.process is not None
            wait_healthy(instance.url, instance.process)
        if self._nginx_process is not None:
            wait_healthy(self.url, self._nginx_process)

    def stop(self) -> None:
        """nginx first (no new requests), then the instances together; also after a failed
        start."""
        if self._nginx_process is not None:
            self._nginx_process.terminate()
            self._nginx_process.wait_ended()
        started = [i.process for i in self.instances if i.process is not None]
        for process in started:
            process.terminate()
        for process in started:
            process.wait_ended()
        self.reset_redis()

    def reset_redis(self) -> None:
        """Delete every key this cluster wrote to Redis (rate-limit counters among them)."""
        client = redis.Redis.from_url(REDIS_URL)
        try:
            # Anywhere in the name: limits puts its own "LIMITS:LIMITER/" before the prefix.
            keys = list(client.scan_iter(match=f"*{self.redis_prefix}*"))
            if keys:
                client.delete(*keys)
        finally:
            client.close()

    def logs(self) -> str:
        """Every process's output, for a failure message."""
        parts = [(i.name, i.process) for i in self.instances] + [("nginx", self._nginx_process)]
        return "\n".join(
            f"--- {name}\n{process.log.read_text(errors='replace')}"
            for name, process in parts
            if process is not None
        )

    def _start_instance(self, instance: Instance) -> Process:
        env = {
            **self.environment(),
            "MODELDESK_BIND": f"127.0.0.1:{instance.port}",
            "MODELDESK_INSTANCE_NAME": instance.name,
        }
        # How the README deploys it: gunicorn from the project root reads gunicorn.conf.py.
        command = [sys.executable, "-m", "gunicorn", "--no-control-socket", "wsgi:app"]
        return start_process(instance.name, command, env, self.workdir / f"{instance.name}.log")

    def _start_nginx(self) -> Process:
        prefix = self.workdir / "nginx"
        prefix.mkdir(exist_ok=True)
        (prefix / "modeldesk.conf").write_text(
            render_site(NGINX_CONF.read_text(), self.port, [i.port for i in self.instances])
        )
        (prefix / "nginx.conf").write_text(main_config(prefix))
        command = [
            self.nginx,
            "-p",
            str(prefix),
            "-c",
            str(prefix / "nginx.conf"),
            "-e",
            str(prefix / "error.log"),
            "-g",
            f"daemon off; pid {prefix / 'nginx.pid'};",
        ]
        return start_process("nginx", command, dict(os.environ), self.workdir / "nginx.log")


_UPSTREAM_SERVER = re.compile(r"(?m)^(\s*)server 127\.0\.0\.1:\d+;\n")
_LISTEN = re.compile(r"(?m)^(\s*)listen 80;$")


def render_site(shipped: str, port: int, upstream_ports: list[int]) -> str:
    """The shipped site configuration, listening on `port` in front of `upstream_ports`.

    Only the addresses change: a drift in the shipped file (say, a third example server)
    fails here rather than testing something else.
    """
    servers = _UPSTREAM_SERVER.findall(shipped)
    assert len(servers) == 2, "deploy/nginx/modeldesk.conf: expected two upstream servers"
    indent = servers[0]
    lines = "".join(f"{indent}server 127.0.0.1:{p};\n" for p in upstream_ports)
    site = _UPSTREAM_SERVER.sub("", shipped, count=1)
    site = _UPSTREAM_SERVER.sub(lambda _: lines, site, count=1)
    site, listens = _LISTEN.subn(rf"\g<1>listen 127.0.0.1:{port};", site)
    assert listens == 1, "deploy/nginx/modeldesk.conf: expected one `listen 80;`"
    return site


def main_config(prefix: Path) -> str:
    """A main nginx.conf that includes the site, with every path inside `prefix`."""
    # Run by root (CI), nginx would switch its workers to `nobody`, who cannot read a
    # private temp folder: they stay the current user instead.
    user = "user root;\n" if os.geteuid() == 0 else ""
    temp_paths = "".join(
        f"    {kind}_temp_path {prefix / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        f"{user}worker_processes 1;\n"
        "events { worker_connections 256; }\n"
        "http {\n"
        f"    access_log {prefix / 'access.log'};\n"
        f"{temp_paths}"
        f"    include {prefix / 'modeldesk.conf'};\n"
        "}\n"
    )
