"""Every error the API returns, and its status code, in one place: JSON ``{"error", "error_type"}``."""

from __future__ import annotations


class ApiError(Exception):
    """An error with its HTTP status; raised anywhere under a route, rendered by one handler."""

    status = 500
    error_type = "internal_error"

    def __init__(self, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class BadRequest(ApiError):
    status, error_type = 400, "invalid_request"


class Unauthorized(ApiError):
    status, error_type = 401, "unauthorized"


class NotFound(ApiError):
    status, error_type = 404, "not_found"


class RequestTimeout(ApiError):
    status, error_type = 408, "request_timeout"


class PayloadTooLarge(ApiError):
    status, error_type = 413, "payload_too_large"


class ValidationFailed(ApiError):
    status, error_type = 422, "validation_error"


class HeadersTooLarge(ApiError):
    status, error_type = 431, "headers_too_large"


class Overloaded(ApiError):
    status, error_type = 429, "overloaded"


class InferenceFailed(ApiError):
    status, error_type = 500, "inference_error"


class NotReady(ApiError):
    status, error_type = 503, "not_ready"


class ShuttingDown(ApiError):
    status, error_type = 503, "shutting_down"


class Timeout(ApiError):
    status, error_type = 504, "timeout"


def body(error: ApiError) -> dict[str, str]:
    return {"error": error.message, "error_type": error.error_type}
