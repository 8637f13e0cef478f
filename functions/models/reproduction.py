"""Reproductions: a registered version retrained inside the stack from its recorded lineage (the
dataset version's exact object, the spec version, the seed), its holdout predictions compared
with those of the recorded artifact.

Key layout (metadata table): one item per model version, holding its latest reproduction:
    pk=REPRODUCE#<model>  sk=V#<version, 10 digits>   reproduction_id, status, started (epoch s), doc

A version has at most one reproduction RUNNING: a request while one runs joins it (same id, no
second training); a request after it ended starts a new one (its outcome replaces the item; every
outcome stays in the audit trail as `version.reproduce.result`).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from functions.models.registry import NAME_PATTERN

REPRODUCTION_ID_PATTERN = r"^[0-9a-f]{16}$"


def reproduction_pk(model: str) -> str:
    return f"REPRODUCE#{model}"


def reproduction_sk(version: int) -> str:
    return f"V#{version:010d}"


class ReproductionStatus(StrEnum):
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"  # the retraining ran: `result.identical` says whether it reproduced
    FAILED = "FAILED"  # it could not run: `error` names the typed error, `message` what went wrong


class ReproduceResult(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    model: str
    version: int
    dataset: str
    dataset_version: int
    data_sha256: str
    spec_name: str
    spec_version: int
    seed: int
    holdout_rows: int = Field(ge=0)
    identical: bool  # every holdout prediction (and probability) equal
    label_mismatches: int = Field(default=0, ge=0)
    max_abs_diff: float = Field(default=0.0, ge=0)  # probabilities (classification) or values (regression)
    code_version: str = ""  # the code that trained the recorded version
    reproduced_with: str = ""  # the code that retrained it now
    # trained through feature views: the rebuilt point-in-time training set's sha256 and whether it
    # equals the recorded one (byte for byte)
    training_set_sha256: str = ""
    training_set_identical: bool | None = None
    note: str = ""


class ReproduceBody(BaseModel):
    """POST .../reproduce takes no parameters: everything comes from the version's records. The body
    may be absent or `{}`; any field is refused (400) rather than silently ignored."""

    model_config = ConfigDict(extra="forbid")


class ReproduceJob(BaseModel):
    """The reproduce function's event (an asynchronous invoke by the API)."""

    model_config = ConfigDict(extra="forbid")

    reproduction_id: str = Field(pattern=REPRODUCTION_ID_PATTERN)
    model: str = Field(pattern=NAME_PATTERN)
    version: int = Field(ge=1)


class Reproduction(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    reproduction_id: str = Field(pattern=REPRODUCTION_ID_PATTERN)
    model: str = Field(pattern=NAME_PATTERN)
    version: int = Field(ge=1)
    status: ReproductionStatus
    requested_by: str = Field(min_length=1, max_length=2048)
    requested_at: datetime
    finished_at: datetime | None = None
    result: ReproduceResult | None = None
    error: str = ""  # FAILED: the typed error's name (InvalidInput, NotFound, IntegrityError, ...)
    message: str = Field(default="", max_length=4096)
    joined: bool = False  # in a reply: this request joined a reproduction already running
