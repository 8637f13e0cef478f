"""Datasets: stored contracts, dataset versions, validation reports, uploads.

Key layout in the metadata table: see functions/dal/datasets.py.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from functions.models.contracts import DataContract
from functions.models.registry import NAME_PATTERN

MAX_EXAMPLES = 20

FileFormat = Literal["parquet", "csv", "jsonl"]
# error: the file was not judged (a chunked validation's step failed after its retries); it stays under raw/
Verdict = Literal["passed", "failed", "unreadable", "error"]
TrainingStatus = Literal["none", "would_start", "started", "failed"]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Example(_Record):
    """One offending row: its 0-based index in the file and the offending value (as text)."""

    row: int = Field(ge=0)
    value: str | None = None


class RuleResult(_Record):
    rule: str  # e.g. "range:age" (see functions/models/contracts.py for the names)
    column: str | None = None
    passed: bool
    offending: int = Field(default=0, ge=0)
    examples: list[Example] = Field(default_factory=list, max_length=MAX_EXAMPLES)
    message: str = ""


class ValidationReport(_Record):
    dataset: str
    contract_version: int = Field(default=0, ge=0)  # 0: no contract
    source: str = ""  # s3://bucket/key?versionId=...
    format: FileFormat | None = None
    verdict: Verdict
    reason: str = ""  # one line: why the file failed or could not be read
    rows: int = Field(default=0, ge=0)
    columns: int = Field(default=0, ge=0)
    size_bytes: int = Field(default=0, ge=0)
    chunks: int = Field(default=1, ge=0)
    schema_fingerprint: str = ""
    rules: list[RuleResult] = Field(default_factory=list)
    elapsed_ms: float = Field(default=0.0, ge=0)

    @property
    def passed(self) -> bool:
        return self.verdict == "passed"

    @property
    def failed_rules(self) -> list[str]:
        return [r.rule for r in self.rules if not r.passed]

    def summary(self) -> str:
        if self.passed:
            return f"{self.dataset}: passed {len(self.rules)} rules on {self.rows} rows"
        if self.verdict in ("unreadable", "error"):
            return f"{self.dataset}: {self.verdict}: {self.reason}"
        return f"{self.dataset}: failed {', '.join(self.failed_rules)}"


class ContractRecord(_Record):
    dataset: str = Field(pattern=NAME_PATTERN)
    version: int = Field(ge=1)
    contract: DataContract
    created_at: datetime
    created_by: str = ""


class DatasetVersion(_Record):
    dataset: str = Field(pattern=NAME_PATTERN)
    version: int = Field(ge=1)
    key: str  # validated/<dataset>/... in the data bucket
    bucket: str
    version_id: str = ""
    source_key: str = ""  # raw/<dataset>/...
    source_version_id: str = ""
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size_bytes: int = Field(ge=0)
    format: FileFormat
    rows: int = Field(ge=0)
    schema_fingerprint: str
    contract_version: int = Field(ge=1)
    report_uri: str
    created_at: datetime
    uploaded_by: str = ""
    training_spec: str | None = None
    training_status: TrainingStatus = "none"
    training_execution: str = ""
    training_reason: str = ""
    # seconds spent building the offline layouts of the feature views over this version when it was
    # validated (None: none built then; a layout not built then is built on first use)
    layout_seconds: float | None = None

    @property
    def uri(self) -> str:
        suffix = f"?versionId={self.version_id}" if self.version_id else ""
        return f"s3://{self.bucket}/{self.key}{suffix}"


class DatasetSummary(_Record):
    dataset: str
    latest_contract_version: int = 0
    latest_version: int = 0
    created_at: datetime | None = None
    updated_at: datetime | None = None


class UploadRef(_Record):
    """One uploaded object, as an S3 event names it (the idempotency key)."""

    bucket: str
    key: str  # URL-decoded
    version_id: str = ""
    etag: str = ""
    size: int = Field(default=0, ge=0)
    uploaded_by: str = ""


class UploadOutcome(_Record):
    dataset: str
    key: str
    verdict: Verdict | Literal["skipped", "delegated"]  # delegated: validating in chunks (AWS)
    reason: str = ""
    version: int | None = None
    report_uri: str = ""
    moved_to: str = ""
    training_status: TrainingStatus = "none"


class LifecycleStart(_Record):
    """What start_lifecycle did: `would_start` until the lifecycle workflow is deployed."""

    status: Literal["would_start", "started", "failed"]
    execution_arn: str = ""
    reason: str = ""


REPORTS_PREFIX = "reports/validation/"


def report_key(dataset: str, object_version: str) -> str:
    """Where the artifacts bucket keeps the report of one uploaded object version (the version id
    S3 gave the upload; `etag-<etag>` in an unversioned bucket). `stepwise upload` polls it."""
    return f"{REPORTS_PREFIX}{dataset}/{object_version}.json"


class StoredReport(_Record):
    """One upload's validation report as stored (passed: it became a dataset version; otherwise the
    upload was quarantined and the report names the failed rules with example rows)."""

    uri: str
    stored_at: datetime
    quarantined: bool
    report: ValidationReport


class ReportList(_Record):
    dataset: str
    reports: list[StoredReport] = Field(max_length=1_000)  # newest first
