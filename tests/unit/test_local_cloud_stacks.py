"""The local cloud deploys every stack of the cloud assembly, each after the stacks it depends on,
as `cdk deploy --all` does, and resolves cross-stack references between them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from layers.assembly import stack_names
from stepwise.local.cloud import LocalCloud
from tests.unit.apps import two_stacks as app


def _manifest(outdir: Path, artifacts: dict[str, dict[str, object]]) -> Path:
    (outdir / "manifest.json").write_text(json.dumps({"version": "36.0.0", "artifacts": artifacts}))
    return outdir


def test_stack_names_puts_each_stack_after_the_stacks_it_depends_on(tmp_path: Path) -> None:
    stack = "aws:cloudformation:stack"
    outdir = _manifest(
        tmp_path,
        {
            "Tree": {"type": "cdk:tree"},
            "Compute.assets": {"type": "cdk:asset-manifest"},
            "Compute": {"type": stack, "dependencies": ["Stores", "Compute.assets"]},
            "Stores": {"type": stack, "dependencies": ["Stores.assets"]},
            "Stores.assets": {"type": "cdk:asset-manifest"},
        },
    )
    assert stack_names(outdir) == ["Stores", "Compute"]


def test_stack_names_refuses_a_dependency_cycle(tmp_path: Path) -> None:
    stack = "aws:cloudformation:stack"
    outdir = _manifest(
        tmp_path, {"A": {"type": stack, "dependencies": ["B"]}, "B": {"type": stack, "dependencies": ["A"]}}
    )
    with pytest.raises(ValueError, match="dependency cycle"):
        stack_names(outdir)


def test_local_cloud_deploys_both_stacks_of_a_split_app_and_resolves_the_import() -> None:
    # Given an app whose compute stack imports the bucket name its stores stack exports
    with LocalCloud(app_module="tests.unit.apps.two_stacks") as cloud:
        deployment = cloud.deployment
        assert deployment is not None
        # Then both stacks are deployed, the stores first, and the CLI's stack is the compute one
        assert list(deployment.stacks) == [app.STORES_STACK, app.COMPUTE_STACK]
        assert deployment.stack_id == deployment.stacks[app.COMPUTE_STACK]
        assert [a.stack_name for a in cloud.assemblies] == [app.STORES_STACK, app.COMPUTE_STACK]
        # and their outputs and resources are merged, each resource named with its stack
        bucket = deployment.outputs["StoresBucketName"]
        function = deployment.outputs["ComputeFunctionName"]
        bucket_id = next(k for k in cloud.assemblies[0].template["Resources"] if k.startswith(app.BUCKET_ID))
        assert deployment.physical_id(bucket_id, app.STORES_STACK) == bucket
        # and the stores stack's bucket got what moto's CloudFormation ignores (resolved in its own stack)
        assert cloud.client("s3").get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
        # When the compute stack's function runs (its schedule fired, then invoked directly)
        assert any(app.SCHEDULE_ID in fired for fired in cloud.fire_schedules(app.SCHEDULE_ID))
        reply = cloud.client("lambda").invoke(FunctionName=function, Payload=b"{}")
        # Then its environment carries the imported bucket name and it wrote into that bucket
        assert json.loads(reply["Payload"].read()) == {"bucket": bucket}
        body = cloud.client("s3").get_object(Bucket=bucket, Key="probe.txt")["Body"].read()
        assert body == b"written across stacks"
