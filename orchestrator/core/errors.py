"""One root exception; each branch tells the caller what to do next."""

from __future__ import annotations


class RunctlError(Exception):
    """Root of every error this package raises on purpose."""


class InvalidInput(RunctlError):
    """The input was refused before anything was queued: fix the named field and resend."""

    def __init__(self, field: str, rule: str, value: object = None) -> None:
        self.field = field
        self.rule = rule
        shown = "" if value is None else f" (got {_preview(value)})"
        super().__init__(f"{field}: {rule}{shown}")


class ConfigurationError(RunctlError):
    """The service is not set up to run this: fix the setting named in the message."""


class RedisUnavailable(RunctlError):
    """Redis could not be reached: start it, or point RUNCTL_REDIS_URL at one."""


def _preview(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class JobInterrupted(BaseException):
    """Raised inside a running job when its worker shuts down and the grace has passed.

    A BaseException, so that no `except Exception` on the way (the retry loop, the
    lifecycle's bug catcher) turns it into a result: the job stops where it is, its
    progress as last saved, and the worker hands its message back to the queue.
    """
