"""The dal's one AWS-error vocabulary: error codes and 'the object is not there'."""

from __future__ import annotations

from pathlib import Path

import pytest
from botocore.exceptions import ClientError, ConnectTimeoutError

from functions.dal.clients import error_code, is_missing


def client_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"}}, "GetObject")


@pytest.mark.parametrize("code", ["NoSuchKey", "NoSuchVersion", "NoSuchBucket", "NotFound", "404", "405"])
def test_is_missing_every_s3_answer_for_an_absent_object(code: str) -> None:
    assert is_missing(client_error(code))


@pytest.mark.parametrize("code", ["400", "InvalidArgument"])
def test_is_missing_a_version_id_s3_cannot_parse_only_when_a_version_was_asked_for(code: str) -> None:
    assert is_missing(client_error(code), version_id="not-a-version")
    assert not is_missing(client_error(code))


@pytest.mark.parametrize("code", ["AccessDenied", "SlowDown", "InternalError", "403", "500"])
def test_is_missing_never_for_refusals_throttling_or_failures(code: str) -> None:
    assert not is_missing(client_error(code), version_id="v")


def test_error_code_names_the_aws_code_or_the_exception_type() -> None:
    assert error_code(client_error("NoSuchKey")) == "NoSuchKey"
    assert error_code(ClientError({}, "GetObject")) == "error"
    timeout = ConnectTimeoutError(endpoint_url="http://x")
    assert error_code(timeout) == "ConnectTimeoutError" and not is_missing(timeout)


def test_dal_has_one_error_vocabulary() -> None:
    # Given the runtime code
    root = Path(__file__).resolve().parents[2] / "functions"
    sources = {p.relative_to(root).as_posix(): p.read_text() for p in root.rglob("*.py")}
    # Then only dal/clients.py reads AWS error codes or spells S3's missing-object codes
    for path, text in sources.items():
        if path == "dal/clients.py":
            continue
        assert "def _code(" not in text, f"{path} has its own error-code helper"
        assert '["Error"]["Code"]' not in text and '.get("Error", {})' not in text, f"{path} reads error codes itself"
        assert '"NoSuchKey"' not in text and '"NoSuchVersion"' not in text, f"{path} lists missing-object codes itself"
