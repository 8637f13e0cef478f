"""Typed errors. Their class names are matched by the state machine's Retry/Catch and mapped
to HTTP statuses by the API's exception handlers, so renaming one is an interface change."""

from __future__ import annotations


class StepwiseError(Exception):
    """Base of every error this project raises on purpose."""

    status_code = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(StepwiseError):
    status_code = 404


class Conflict(StepwiseError):
    status_code = 409


class InvalidInput(StepwiseError):
    status_code = 400


class Forbidden(StepwiseError):
    status_code = 403


class Gone(StepwiseError):
    status_code = 410


class StoreUnavailable(StepwiseError):
    """A store (S3, DynamoDB) did not answer or throttled; safe to retry."""

    status_code = 503


class IntegrityError(StepwiseError):
    """Stored bytes do not match the recorded sha256: never load or serve them."""

    status_code = 503
