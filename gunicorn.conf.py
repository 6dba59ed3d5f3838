"""gunicorn settings, read automatically by `gunicorn wsgi:app` from the project root.

Chat replies are long-lived SSE responses. The gthread worker serves each request on a
thread of its own and keeps heart-beating while a stream is open, so a long stream is
neither killed by `timeout` nor blocks other requests (a sync worker would be both).
Every value can be set from the environment; see the README's deployment section.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any

from webapp.config import ConfigError, build


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


bind = os.environ.get("MODELDESK_BIND", f"0.0.0.0:{os.environ.get('PORT', '8000')}")
worker_class = "gthread"
workers = _int("WEB_CONCURRENCY", 2)
# Each open chat stream holds a thread (plus one more when the mock answers from this same
# server): size threads for the streams you expect per worker.
threads = _int("MODELDESK_THREADS", 64)
# Per-process stream cap (webapp/services/reply_limits.py): below the thread count, leaving
# threads for pages and for a mock answering from this same server.
os.environ.setdefault("MODELDESK_MAX_STREAMS", str(max(1, (threads - 4) // 2)))
# gthread's timeout is the worker heartbeat, not a per-request limit: streams may run longer.
timeout = _int("MODELDESK_WORKER_TIMEOUT", 60)
# On deploy/restart, let open replies finish (a long reply takes a minute or two).
graceful_timeout = _int("MODELDESK_GRACEFUL_TIMEOUT", 120)
keepalive = _int("MODELDESK_KEEPALIVE", 5)
# Access and error logs to stdout/stderr for the platform to collect.
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("MODELDESK_LOG_LEVEL", "info")
# Trust X-Forwarded-* only from the proxy in front of gunicorn (comma-separated IPs).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")


def on_starting(server: object) -> None:
    """Refuse to start (one line, no traceback) when the configuration is incomplete."""
    try:
        build(instance_path=os.path.join(os.getcwd(), "instance"))
    except ConfigError as error:
        sys.exit(f"ModelDesk cannot start: {error}")


def post_worker_init(worker: Any) -> None:
    """Replies belong to the server, not to a request. When a worker is told to stop (deploy,
    restart: SIGTERM), the replies it is writing get half the graceful timeout to finish; the
    rest are then stopped, so each is saved as stopped with its text (and the pages following
    it get its end) before gunicorn's own grace runs out."""
    runs = worker.wsgi.extensions.get("reply_runs")
    previous = signal.getsignal(signal.SIGTERM)
    if runs is None or not callable(previous):
        return

    def on_term(signum: int, frame: Any) -> None:
        finishing = threading.Thread(
            target=_finish_replies, args=(worker,), name="finish-replies", daemon=True
        )
        worker.finishing_replies = finishing
        finishing.start()
        previous(signum, frame)

    signal.signal(signal.SIGTERM, on_term)


def worker_exit(server: Any, worker: Any) -> None:
    """gthread leaves its loop as soon as no connection is open, so a reply nobody follows
    would die with the process: wait here until the replies are finished (by the thread
    SIGTERM started, or now when the worker stops for another reason)."""
    finishing = getattr(worker, "finishing_replies", None)
    if finishing is not None:
        finishing.join()
    else:
        _finish_replies(worker)


def _finish_replies(worker: Any) -> None:
    """Wait up to half the grace for the worker's running replies, then stop and save the
    rest (see webapp/services/reply_runs.py)."""
    runs = getattr(getattr(worker, "wsgi", None), "extensions", {}).get("reply_runs")
    if runs is None:
        return
    stopped = runs.finish(timeout=graceful_timeout / 2)
    if stopped:
        worker.log.info("stopped %d replies still running at exit: %s", len(stopped), stopped)
