"""`GET /v1/models`, `GET /v1/models/<id>`, `POST /v1/chat/completions`: read the request,
call the gateway service, send what it answers."""

from __future__ import annotations

from flask import Blueprint, Response, request

from webapp.gateway.errors import api_error_response
from webapp.llm.relay import StreamRelay
from webapp.services import gateway
from webapp.services.gateway import ApiError, JsonReply

bp = Blueprint("gateway", __name__, url_prefix="/v1")

_STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _bearer_secret() -> str | None:
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return secret.strip() or None


def _send(answer: JsonReply | StreamRelay | ApiError) -> Response:
    if isinstance(answer, ApiError):
        return api_error_response(answer)
    if isinstance(answer, StreamRelay):
        return Response(answer, mimetype="text/event-stream", headers=_STREAM_HEADERS)
    return Response(answer.body, status=answer.status, mimetype="application/json")


@bp.get("/models")
def list_models() -> Response:
    return _send(gateway.list_models(_bearer_secret()))


@bp.get("/models/<path:model_id>")
def get_model(model_id: str) -> Response:
    return _send(gateway.get_model(_bearer_secret(), model_id))


@bp.post("/chat/completions")
def chat_completions() -> Response:
    body = request.get_json(silent=True, force=True)
    return _send(gateway.chat_completion(_bearer_secret(), body))
