"""Two gunicorn instances behind Debian's nginx (deploy/nginx/modeldesk.conf), on one
PostgreSQL database and one Redis: requests reach both, a chat reply streams through nginx
unbuffered, and limits and revocation hold across instances — the sign-in rate limit and an
app key's rpm are one count shared by both, and a revoked key is refused by both.

Skipped on a machine without nginx, PostgreSQL or Redis; .ci/run makes them run.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing

import httpx2
import pytest

from tests.support.chat_http import read_frames, send
from tests.support.cluster import (
    INSTANCE_HEADER,
    Cluster,
    ThrowawayDatabase,
    require_cluster_services,
)
from tests.support.users import MEMBER_EMAIL, csrf_token, signed_in_at
from tests.support.waiting import wait_for

# Under pytest-xdist the modules that start gunicorn (and nginx) run on one worker, one
# after another: two clusters starting at once would crowd a 2-core box.
pytestmark = pytest.mark.xdist_group("gunicorn")

# Seconds between the mock's streamed pieces: a reply of ~16 pieces takes over a second, so
# a buffering proxy would hold it back long enough for the reply to be recorded first.
MOCK_STREAM_DELAY = 0.1
SIGN_IN_LIMIT = 10  # per minute, per client address (webapp/blueprints/auth.py)
APP_KEY_RPM = 4


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Migrated, seeded, with a member; started once for the module (it takes seconds)."""
    nginx = require_cluster_services()
    database = ThrowawayDatabase()
    cluster = Cluster(
        nginx=nginx,
        workdir=tmp_path_factory.mktemp("cluster"),
        database=database,
        mock_stream_delay=MOCK_STREAM_DELAY,
    )
    try:
        cluster.set_up()
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        database.drop()


@pytest.fixture
def fresh_limits(cluster: Cluster) -> Iterator[None]:
    """Rate-limit counters from zero, and left at zero for the tests after this one."""
    cluster.reset_redis()
    yield
    cluster.reset_redis()


def test_requests_through_nginx_reach_every_instance(cluster: Cluster) -> None:
    answered: set[str] = set()

    def every_instance_answered() -> bool:
        response = httpx2.get(f"{cluster.url}/healthz", timeout=5)
        assert response.status_code == 200, cluster.logs()
        answered.add(response.headers[INSTANCE_HEADER])
        return len(answered) == cluster.size

    assert wait_for(every_instance_answered, timeout=20), answered


def test_a_chat_reply_streams_through_nginx_before_it_is_finished(cluster: Cluster) -> None:
    (model_id,) = cluster.database.query("SELECT id FROM llm_models WHERE key = 'mock'")[0]
    with closing(signed_in_at(cluster.url)) as client:
        message_id = send(client, model_id, "x" * 230)
        with client.stream("GET", f"/messages/{message_id}/stream", timeout=30) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            # Passed on by nginx, so a proxy in front of it does not buffer the stream either.
            assert response.headers["X-Accel-Buffering"] == "no"
            frames = read_frames(response.iter_lines())
            first_delta = next(frame for frame in frames if frame.event == "delta")
            # Read at the moment the first piece arrived: nginx passed it on while the
            # instance was still writing the reply (a buffered reply only arrives once it
            # has been recorded as complete).
            status_at_first_delta = message_status(cluster, message_id)
            rest = list(frames)
    assert status_at_first_delta == "streaming"
    assert first_delta.data
    assert [frame.event for frame in rest].count("delta") >= 3
    assert rest[-1].event == "end"
    assert wait_for(lambda: message_status(cluster, message_id) == "complete")


def test_the_sign_in_limit_is_shared_by_both_instances(
    cluster: Cluster, fresh_limits: None
) -> None:
    with httpx2.Client(base_url=cluster.url, timeout=10) as client:
        token = csrf_token(client, "/login")
        wrong = {"csrf_token": token, "email": MEMBER_EMAIL, "password": "not the password"}
        attempts = [client.post("/login", data=wrong) for _ in range(SIGN_IN_LIMIT + 1)]
    statuses = [response.status_code for response in attempts]
    remaining = [int(response.headers["X-RateLimit-Remaining"]) for response in attempts]
    instances = {response.headers[INSTANCE_HEADER] for response in attempts}
    assert instances == {"web-1", "web-2"}, "nginx sent every attempt to one instance"
    # One count for both: with a count per instance, each would have allowed ten.
    assert statuses == [401] * SIGN_IN_LIMIT + [429], cluster.logs()
    assert remaining == [*range(SIGN_IN_LIMIT - 1, -1, -1), 0]


def test_an_app_keys_rpm_limit_is_shared_by_both_instances(
    cluster: Cluster, fresh_limits: None
) -> None:
    secret = create_app_key(cluster, "shared-rpm", "--rpm", str(APP_KEY_RPM))
    answers = [completion(cluster, secret) for _ in range(APP_KEY_RPM + 1)]
    assert {answer.headers[INSTANCE_HEADER] for answer in answers} == {"web-1", "web-2"}
    # One count for both: with a count per instance, each would have allowed APP_KEY_RPM.
    assert [answer.status_code for answer in answers] == [200] * APP_KEY_RPM + [429]
    refused = answers[-1]
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert int(refused.headers["Retry-After"]) >= 1


def test_a_revoked_app_key_is_refused_by_both_instances(cluster: Cluster) -> None:
    secret = create_app_key(cluster, "revoked-everywhere")
    # Both instances know the key (and so hold it in their in-process catalog) ...
    assert statuses_by_instance(cluster, secret) == {"web-1": 200, "web-2": 200}
    cluster.flask(["apikeys", "revoke", "revoked-everywhere"])
    # ... and both stop taking it: the design says within about a second; 10x that here.
    assert wait_for(
        lambda: statuses_by_instance(cluster, secret) == {"web-1": 401, "web-2": 401},
        timeout=10,
    ), statuses_by_instance(cluster, secret)


def create_app_key(cluster: Cluster, name: str, *options: str) -> str:
    """A new app key's secret: `flask apikeys create` prints it alone on its last line."""
    (output,) = cluster.flask(["apikeys", "create", name, *options])
    return output.strip().splitlines()[-1]


def completion(cluster: Cluster, secret: str) -> httpx2.Response:
    return httpx2.post(
        f"{cluster.url}/v1/chat/completions",
        json={"model": "mock", "messages": [{"role": "user", "content": "Hello"}]},
        headers={"Authorization": f"Bearer {secret}"},
        timeout=30,
    )


def statuses_by_instance(cluster: Cluster, secret: str) -> dict[str, int]:
    """The status each instance answers a completion with (nginx alternates between them)."""
    statuses: dict[str, int] = {}

    def every_instance_answered() -> bool:
        answer = completion(cluster, secret)
        statuses[answer.headers[INSTANCE_HEADER]] = answer.status_code
        return len(statuses) == cluster.size

    assert wait_for(every_instance_answered, timeout=20), statuses
    return statuses


def message_status(cluster: Cluster, message_id: int) -> str:
    rows = cluster.database.query(
        "SELECT status FROM chat_messages WHERE id = %(id)s", id=message_id
    )
    return str(rows[0][0])
