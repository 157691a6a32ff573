"""The API errors the simulator answers with, in the wire protocol's words.

One exception, `ApiError`, carries everything an error response needs; the functions below
build the ones the real API is known to send, with its exact messages (see PROTOCOL.md).
"""

from __future__ import annotations

from pydantic import ValidationError

INVALID_REQUEST = "invalid_request_error"
SERVER_ERROR = "server_error"

# The messages OpenAI sends for its own 5xx; clients match on status, not text.
SERVER_MESSAGES: dict[int, str] = {
    500: "The server had an error while processing your request. Sorry about that!",
    502: "Bad gateway.",
    503: "The server is overloaded or not ready yet.",
    504: "Gateway timeout.",
}


class ConnectionDropped(Exception):
    """The server closes the connection without answering (a proxy or a crash mid-request)."""


class ApiError(Exception):
    """An error response: HTTP status, the `error` object's four fields, and, for 429 and
    503, how long the client should wait (`retry_after_s`, sent as `retry-after` headers)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = INVALID_REQUEST,  # the wire protocol's field name
        code: str | None = None,
        param: str | None = None,
        retry_after_s: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.retry_after_s = retry_after_s
        self.headers = headers


def thread_not_found(thread_id: str) -> ApiError:
    return ApiError(404, f"No thread found with id '{thread_id}'.")


def run_not_found(run_id: str) -> ApiError:
    return ApiError(404, f"No run found with id '{run_id}'.")


def cannot_cancel(status: str) -> ApiError:
    return ApiError(400, f"Cannot cancel run with status '{status}'.")


def missing_api_key() -> ApiError:
    return ApiError(
        401,
        "You didn't provide an API key. You need to provide your API key in an "
        "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
        code="invalid_api_key",
    )


def incorrect_api_key() -> ApiError:
    # The real API echoes a masked key; echoing any part of a secret is exactly what we
    # want clients never to depend on, so the simulator does not.
    return ApiError(401, "Incorrect API key provided.", code="invalid_api_key")


def missing_beta_header() -> ApiError:
    return ApiError(
        400,
        "You must provide the 'OpenAI-Beta' header to access the Assistants API. "
        "Please try again by setting the header 'OpenAI-Beta: assistants=v2'.",
        code="invalid_beta",
    )


def invalid_url(method: str, path: str) -> ApiError:
    return ApiError(404, f"Invalid URL ({method} {path})")


def invalid_param(param: str, message: str) -> ApiError:
    return ApiError(400, message, param=param)


def missing_param(param: str) -> ApiError:
    return ApiError(400, f"Missing required parameter: '{param}'.", param=param)


def invalid_body() -> ApiError:
    return ApiError(
        400,
        "We could not parse the JSON body of your request. (HINT: This likely means you "
        "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, "
        "but what was sent was not valid JSON.)",
    )


def server_error(status: int, message: str | None = None) -> ApiError:
    default = SERVER_MESSAGES.get(status, "The server had an error.")
    return ApiError(status, message or default, type=SERVER_ERROR)


def rate_limited(message: str, retry_after_s: float | None, *, type: str = "requests") -> ApiError:
    return ApiError(
        429, message, type=type, code="rate_limit_exceeded", retry_after_s=retry_after_s
    )


def invalid_fields(error: ValidationError) -> ApiError:
    """The 400 for a body that failed validation, naming the first bad field in `param`."""
    first = error.errors(include_url=False)[0]
    param = ".".join(str(part) for part in first["loc"]) or None
    message = f"Invalid '{param}': {first['msg']}." if param else f"{first['msg']}."
    return ApiError(400, message, param=param)
