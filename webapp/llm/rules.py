"""A rule that says no: how a check before sending rejects a request.

The checks in `prepare` and `options` raise `Invalid`, which carries the failure `Result`
the public functions return instead of raising.
"""

from __future__ import annotations

from webapp.llm import results as codes
from webapp.llm.results import Result


class Invalid(Exception):
    """Input rejected before sending; carries the Result to return."""

    def __init__(self, result: Result) -> None:
        super().__init__(result.errors)
        self.result = result


def invalid(message: str) -> Invalid:
    return Invalid(Result.failure(codes.INVALID_INPUT, message))


def unsupported(message: str, parameter: str) -> Invalid:
    """A capability the model lacks; `unsupported_parameter` names the option asked for."""
    return Invalid(Result.failure(codes.INVALID_INPUT, message, unsupported_parameter=parameter))
