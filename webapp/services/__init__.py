"""Services: plain functions used by the views, the CLI and the tests alike."""

from webapp.services.chat import StreamEvent, run_chat, stream_chat
from webapp.services.connection import check_model_connection
from webapp.services.result import Result

__all__ = ["Result", "StreamEvent", "check_model_connection", "run_chat", "stream_chat"]
