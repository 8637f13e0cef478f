"""Typed errors. Their class names are matched by the state machine's Retry/Catch and mapped
to HTTP statuses by the API's exception handlers, so renaming one is an interface change."""

from __future__ import annotations


class StepwiseError(Exception):
    """Base of every error this project raises on purpose."""

    status_code = 500
    # seconds a caller should wait before trying again (the API's Retry-After header); None: do not retry
    retry_after_seconds: int | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(StepwiseError):
    status_code = 404


class Conflict(StepwiseError):
    status_code = 409


class InvalidInput(StepwiseError):
    """The request is malformed or refused as given; `details` names each field and its problem
    ([{"field", "reason"}]), when known."""

    status_code = 400

    def __init__(self, message: str, details: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.details = details or []


class Forbidden(StepwiseError):
    status_code = 403


class Gone(StepwiseError):
    status_code = 410


class StoreUnavailable(StepwiseError):
    """A store or AWS service (S3, DynamoDB, Step Functions) failed, refused or did not answer in
    time; nothing was half-written, so the same request is safe to retry."""

    status_code = 503
    retry_after_seconds = 5


class Throttled(StoreUnavailable):
    """A store or AWS service throttled the call; retry after a short pause. A StoreUnavailable, so
    code that catches that catches this too; the workflow's Retry names both."""

    status_code = 429
    retry_after_seconds = 2


class IntegrityError(StepwiseError):
    """Stored bytes do not match the recorded sha256: never load or serve them."""

    status_code = 503


class ChunkCheckFailed(StepwiseError):
    """A chunk of a chunked validation could not be checked (its task failed after its retries):
    the upload was not judged, so it is neither versioned nor quarantined."""

    status_code = 503


class OfflineQueryFailed(StepwiseError):
    """The offline store's distributed join (an Athena query) failed, was cancelled or did not
    finish within its bounded wait; the message names which, and the engine's reason. Not a
    StoreUnavailable: running the same query again is not expected to help, so nothing retries it."""

    status_code = 502


class ImportRefused(InvalidInput):
    """An imported model artifact failed verification (size, sha256, parse, operators, external
    data, runtime load, or its inputs against the dataset's contract): `details` lists every
    reason found; nothing is registered."""
