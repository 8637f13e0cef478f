"""Every function AWS invokes asynchronously has a duplicate-delivery proof: the synthesized
template's asynchronously invoked functions (tests/infra/test_delivery.py `async_functions`) are
mapped, by handler, to tests that deliver the same event twice and must exist. A new asynchronous
function fails here until its handler is idempotent and proven so.

Synthesizes the real CDK app (no Docker, no credentials; ~10 s).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest

from stepwise.local.assembly import Assembly, synthesize
from tests.infra.test_delivery import async_functions

# handler -> the tests (module::name) that prove a duplicate delivery is harmless
PROOFS: dict[str, list[str]] = {
    "functions.handlers.validate.lambda_handler": [
        "tests.integration.test_validate_handler::test_validate_events_delivered_ten_times_shuffled_make_one_version_each",
        "tests.integration.test_validate_handler::test_validate_same_event_three_times_in_order_makes_one_version",
    ],
    "functions.handlers.drift.lambda_handler": [
        "tests.integration.test_drift_idempotency::test_drift_handler_events_delivered_four_times_shuffled_make_one_report_each",
        "tests.integration.test_drift_idempotency::test_drift_handler_schedule_delivered_twice_checks_each_model_once",
        "tests.integration.test_drift_idempotency::test_drift_handler_same_check_id_with_another_payload_is_a_conflict",
    ],
    "functions.handlers.audit_export.lambda_handler": [
        "tests.integration.test_audit_export_idempotency::test_audit_export_days_requested_three_times_shuffled_are_exported_once_each",
        "tests.integration.test_audit_export_idempotency::test_audit_export_day_whose_events_changed_is_a_conflict",
    ],
    "functions.handlers.reproduce.lambda_handler": [
        "tests.integration.test_governance_reproduce::"
        "test_reproduce_repeated_request_joins_the_running_one_and_a_redelivery_does_nothing",
        "tests.integration.test_governance_reproduce::"
        "test_reproduce_running_past_its_lease_is_replaced_and_its_late_delivery_does_nothing",
    ],
    "functions.handlers.materialize.lambda_handler": [
        "tests.integration.test_materialize::test_materialize_validated_step_delivered_three_times_makes_one_run",
        "tests.integration.test_materialize::test_materialize_start_hands_the_run_to_its_workflow_once",
    ],
}


def _handler(function: dict[str, Any]) -> str:
    """A zip function's Handler, or an image function's command (its handler)."""
    props = function["Properties"]
    return str(props.get("Handler") or props["ImageConfig"]["Command"][0])


@pytest.fixture(scope="module")
def assembly(tmp_path_factory: pytest.TempPathFactory) -> Assembly:
    return synthesize(Path(tmp_path_factory.mktemp("cdk.out")))


def test_idempotency_every_async_function_has_a_duplicate_delivery_proof(assembly: Assembly) -> None:
    # Given the template's asynchronously invoked functions and their handlers
    resources = assembly.template["Resources"]
    handlers = {lid: _handler(resources[lid]) for lid in async_functions(assembly.template)}
    assert handlers, "the template has no asynchronously invoked function: async_functions is broken"
    # Then each handler has proofs, and each named proof is a test that exists
    missing = {lid: h for lid, h in handlers.items() if not PROOFS.get(h)}
    assert not missing, f"asynchronously invoked without a duplicate-delivery proof: {missing}"
    for handler in set(handlers.values()):
        for proof in PROOFS[handler]:
            module, _, name = proof.partition("::")
            assert callable(getattr(importlib.import_module(module), name, None)), f"no test {proof}"
