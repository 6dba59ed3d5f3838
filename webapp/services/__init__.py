"""Services: plain functions over the database, one module per area, used by the views,
the CLI and the tests alike. The chat functions here are the public Python API."""

from webapp.llm.results import Result
from webapp.llm.run import StreamEvent
from webapp.services.chat import check_model_connection, run_chat, stream_chat

__all__ = ["Result", "StreamEvent", "check_model_connection", "run_chat", "stream_chat"]
