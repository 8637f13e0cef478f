"""The local runtime's environment swap (stepwise/local/runtime.py): restoring it never removes a
variable (another thread may be copying os.environ: moto's Step Functions interpreter does, for
every task), and the functions' settings read an emptied variable as unset."""

from __future__ import annotations

import os

import pytest

from functions.models.settings import get_settings
from stepwise.local.runtime import _RUNTIME_ENV, _restore_environment


def test_restore_environment_empties_what_the_invocation_added_and_removes_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given the environment before an invocation, and what the invocation set
    monkeypatch.setenv("STEPWISE_DATA_BUCKET", "before")
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    saved = dict(os.environ)
    monkeypatch.setenv("STEPWISE_DATA_BUCKET", "function's")
    monkeypatch.setenv("STEPWISE_LIFECYCLE_SM_ARN", "arn:aws:states:us-east-1:123456789012:stateMachine:x")
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", _RUNTIME_ENV["POWERTOOLS_METRICS_DISABLED"])
    keys_during = set(os.environ)
    # When it is restored
    _restore_environment(saved)
    # Then no variable is gone, the function's own one is empty, the saved ones are back, and the
    # runtime's fixed ones keep valid values (an empty POWERTOOLS_METRICS_DISABLED would not parse)
    assert keys_during <= set(os.environ)
    assert os.environ["STEPWISE_LIFECYCLE_SM_ARN"] == ""
    assert os.environ["STEPWISE_DATA_BUCKET"] == "before"
    assert os.environ["POWERTOOLS_METRICS_DISABLED"] == _RUNTIME_ENV["POWERTOOLS_METRICS_DISABLED"]


def test_settings_read_an_empty_variable_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEPWISE_LIFECYCLE_SM_ARN", "")
    monkeypatch.setenv("STEPWISE_ALIAS_CACHE_TTL", "")
    get_settings.cache_clear()
    try:
        settings = get_settings()
        assert settings.lifecycle_state_machine_arn == ""
        assert settings.alias_cache_ttl_seconds == type(settings).model_fields["alias_cache_ttl_seconds"].default
    finally:
        get_settings.cache_clear()
