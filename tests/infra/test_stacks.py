"""The app's two stacks: the stateful stores apart from the compute stack that runs on them.

References run one way (compute imports the stores' exports); the stores stack names nothing of
the compute stack, so it deploys first and stays when the compute stack is replaced or deleted.
"""

from __future__ import annotations

import json
from typing import Any

from infra import constants as c
from stepwise.local.assembly import Assembly

STATEFUL = {"AWS::S3::Bucket", "AWS::DynamoDB::Table", "AWS::KMS::Key"}
RUNS = {"AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::Lambda::Function"}


def _by_name(assemblies: list[Assembly]) -> dict[str, dict[str, Any]]:
    return {a.stack_name: a.template for a in assemblies}


def _types(template: dict[str, Any]) -> set[str]:
    return {r["Type"] for r in template["Resources"].values()}


def test_stacks_stores_deploy_first_and_the_compute_stack_keeps_the_cli_name(assemblies: list[Assembly]) -> None:
    # Given the stacks in deployment order
    names = [a.stack_name for a in assemblies]
    # Then the stores come first and the compute stack is the one the CLI names
    assert names == [c.STORES_STACK_NAME, c.STACK_NAME, c.CONSOLE_STACK_NAME]
    compute = next(a for a in assemblies if a.stack_name == c.STACK_NAME)
    assert c.STORES_STACK_NAME in compute.artifact.get("dependencies", [])


def test_stacks_every_stateful_resource_is_a_store_and_the_stores_run_nothing(assemblies: list[Assembly]) -> None:
    stacks = _by_name(assemblies)
    stores, compute = stacks[c.STORES_STACK_NAME], stacks[c.STACK_NAME]
    # Then buckets, tables and the key are all in the stores stack (retained there)
    assert _types(stores) >= STATEFUL
    assert not STATEFUL & _types(compute), sorted(STATEFUL & _types(compute))
    for lid, res in stores["Resources"].items():
        if res["Type"] in STATEFUL:
            assert res.get("DeletionPolicy") == "Retain", lid
    # And the stores stack holds no role, policy or function: every role is the compute stack's,
    # where the append-only audit guard attaches its Deny to each of them
    assert not RUNS & _types(stores), sorted(RUNS & _types(stores))


def test_stacks_stores_never_reference_the_compute_stack(assemblies: list[Assembly]) -> None:
    stacks = _by_name(assemblies)
    stores = next(a for a in assemblies if a.stack_name == c.STORES_STACK_NAME)
    # Then the stores stack imports nothing and depends on no stack
    assert "Fn::ImportValue" not in json.dumps(stacks[c.STORES_STACK_NAME])
    assert not [d for d in stores.artifact.get("dependencies", []) if not d.endswith(".assets")]
    # And the data bucket's notification to the validation function is the compute stack's own
    notifications = [
        r for r in stacks[c.STACK_NAME]["Resources"].values() if r["Type"] == "Custom::S3BucketNotifications"
    ]
    assert len(notifications) == 1
    assert notifications[0]["Properties"]["BucketName"] == {
        "Fn::ImportValue": _export_of(stacks, "Ref", c.DATA_STORE_ID)
    }


def test_stacks_cross_stack_references_are_the_stores_exports(assemblies: list[Assembly]) -> None:
    stacks = _by_name(assemblies)
    exports = {o["Export"]["Name"] for o in stacks[c.STORES_STACK_NAME].get("Outputs", {}).values() if "Export" in o}
    imported = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if "Fn::ImportValue" in value:
                imported.add(value["Fn::ImportValue"])
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(stacks[c.STACK_NAME])
    # Then the compute stack imports only the stores' exports (names and ARNs of the stores and key)
    assert imported and imported <= exports, sorted(imported - exports)
    assert len(exports) <= 20, sorted(exports)


def test_stacks_cdk_nag_checked_each_stack(assembly: Assembly) -> None:
    # Given cdk-nag's report of the synth
    report = json.loads((assembly.outdir / "validation-report.json").read_text())
    paths = {
        construct["constructPath"].split("/")[0]
        for plugin in report["pluginReports"]
        for finding in plugin.get("suppressedViolations", []) + plugin["violations"]
        for construct in finding["violatingConstructs"]
    }
    # Then every pack ran over both stacks (each has acknowledged findings) and none is open
    assert {c.STORES_STACK_NAME, c.STACK_NAME} <= paths
    assert all(plugin["violations"] == [] for plugin in report["pluginReports"])


def _export_of(stacks: dict[str, dict[str, Any]], kind: str, construct_id: str) -> str:
    """The name of the stores' export of a Ref (or GetAtt) of the resource under `construct_id`."""
    for output in stacks[c.STORES_STACK_NAME]["Outputs"].values():
        value = output["Value"]
        target = value.get("Ref") if kind == "Ref" else (value.get("Fn::GetAtt") or [None])[0]
        if isinstance(target, str) and target.startswith(construct_id) and "Export" in output:
            return str(output["Export"]["Name"])
    raise AssertionError(f"no export of {kind} {construct_id}")
