"""A reply belongs to the server: started through one gunicorn process, it runs on when its
page goes away, and a page served by another process follows it to the end — every character
once — or stops it. Once per way the processes can talk: Redis pub/sub, PostgreSQL
LISTEN/NOTIFY, and no bus at all (the follower reads the reply's checkpoints).

Two gunicorn processes with one worker each, so which process serves a request is chosen by
the port, not by chance. Skipped on a machine without PostgreSQL, Redis or nginx; .ci/run
makes them run.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import httpx2
import pytest

from tests.support.chat_http import deltas_text, end_html, read_frames, send
from tests.support.cluster import Cluster, ThrowawayDatabase, require_cluster_services
from tests.support.mock_api import LONG_PROMPT, PIECE, mock_reply_pattern
from tests.support.users import csrf_token, signed_in_at
from tests.support.waiting import wait_for

# Under pytest-xdist the modules that start gunicorn (and nginx) run on one worker, one
# after another: two clusters starting at once would crowd a 2-core box.
pytestmark = pytest.mark.xdist_group("gunicorn")

# Seconds between the mock's pieces: a reply to LONG_PROMPT (~15 pieces) takes about 3 s, so
# it is still being written when the second process starts following it.
MOCK_STREAM_DELAY = 0.2
# MODELDESK_REPLY_BUS → how the second process says it follows the reply.
BUSES = {"redis": "redis", "postgres": "postgres", "none": "database"}


@pytest.fixture(scope="module", params=list(BUSES))
def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    nginx = require_cluster_services()
    database = ThrowawayDatabase()
    cluster = Cluster(
        nginx=nginx,
        workdir=tmp_path_factory.mktemp(f"followers-{request.param}"),
        database=database,
        workers=1,
        mock_stream_delay=MOCK_STREAM_DELAY,
        extra_env={"MODELDESK_REPLY_BUS": request.param},
    )
    try:
        cluster.set_up()
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        database.drop()


def mock_model(cluster: Cluster) -> tuple[int, str]:
    rows = cluster.database.query("SELECT id, model FROM llm_models WHERE key = 'mock'")
    return rows[0][0], rows[0][1]


def start_and_drop(client: httpx2.Client, message_id: int) -> str:
    """Open the reply's stream, read its first pieces, and go away; the text seen."""
    seen = ""
    with client.stream("GET", f"/messages/{message_id}/stream") as response:
        lines = response.iter_lines()
        assert next(lines) == ": reply started"
        for frame in read_frames(lines):
            seen += html.unescape(frame.data)
            if len(seen) >= 3 * PIECE:
                break
    return seen


def saved(cluster: Cluster, message_id: int) -> tuple[str, str]:
    rows = cluster.database.query(
        "SELECT status, content FROM chat_messages WHERE id = %(id)s", id=message_id
    )
    return rows[0][0], rows[0][1]


def test_a_reply_dropped_on_one_process_is_followed_to_its_end_from_another(
    cluster: Cluster,
) -> None:
    writer, follower = cluster.instances
    model_id, model_name = mock_model(cluster)
    with closing(signed_in_at(writer.url)) as first, closing(signed_in_at(follower.url)) as second:
        message_id = send(first, model_id, LONG_PROMPT)
        seen = start_and_drop(first, message_id)

        with second.stream("GET", f"/messages/{message_id}/stream") as response:
            lines = response.iter_lines()
            how = next(lines)
            frames = list(read_frames(lines))

    text = deltas_text(frames)
    assert how == f": reply {BUSES[cluster.extra_env['MODELDESK_REPLY_BUS']]}", cluster.logs()
    assert re.fullmatch(mock_reply_pattern(LONG_PROMPT, model_name), text), text
    assert text.startswith(seen) and len(text) > len(seen)
    assert [frame.event for frame in frames].count("end") == 1
    assert "Stopped" not in end_html(frames)
    assert wait_for(lambda: saved(cluster, message_id) == ("complete", text))


def test_stop_pressed_in_a_page_of_another_process_stops_the_reply(cluster: Cluster) -> None:
    writer, other = cluster.instances
    model_id, model_name = mock_model(cluster)
    with closing(signed_in_at(writer.url)) as first, closing(signed_in_at(other.url)) as second:
        message_id = send(first, model_id, LONG_PROMPT)
        seen = start_and_drop(first, message_id)
        headers = {"HX-Request": "true", "X-CSRFToken": csrf_token(second)}

        stopped = second.post(f"/messages/{message_id}/stop", headers=headers)

    assert stopped.status_code == 200
    assert "Stopped" in stopped.text, cluster.logs()
    status, content = saved(cluster, message_id)
    assert status == "stopped"
    assert content.startswith(seen)
    assert not re.fullmatch(mock_reply_pattern(LONG_PROMPT, model_name), content)


def test_an_instance_told_to_stop_saves_the_reply_it_was_writing(tmp_path: Path) -> None:
    """gunicorn's SIGTERM (a deploy) to an instance writing a reply nobody follows: gthread
    leaves its loop at once (no connection is open), and the reply still gets half the grace
    (1 s here) to finish, then is stopped and saved with its text, not left "streaming".
    The mock answers from the other instance, so no connection of its own keeps this one up."""
    nginx = require_cluster_services()
    database = ThrowawayDatabase()
    cluster = Cluster(
        nginx=nginx, workdir=tmp_path, database=database, size=2, workers=1, mock_stream_delay=0.5
    )
    try:
        cluster.set_up()
        cluster.start(with_nginx=False)
        writer = cluster.instances[1]  # the mock is served by instances[0]
        assert writer.process is not None
        model_id, _ = mock_model(cluster)
        with closing(signed_in_at(writer.url)) as client:
            message_id = send(client, model_id, LONG_PROMPT)
            seen = start_and_drop(client, message_id)

        writer.process.terminate()
        writer.process.wait_ended()

        status, content = saved(cluster, message_id)
        assert status == "stopped", cluster.logs()
        assert content.startswith(seen)
        assert "stopped 1 replies still running at exit" in cluster.logs()
    finally:
        cluster.stop()
        database.drop()
