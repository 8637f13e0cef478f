"""Deploy the synthesized templates into an embedded moto, as `cdk bootstrap` + `cdk deploy --all` would:
every stack of the cloud assembly, each after the stacks it depends on (moto's CloudFormation
resolves a stack's Fn::ImportValue from the exports of the stacks it created before).

What moto cannot run is emulated from the template's own properties and reported:
- custom resources (their Lambda never runs here): S3 bucket notifications are applied from the
  custom resource's NotificationConfiguration;
- state machines: moto's CloudFormation puts them in a backend that does not execute, so each
  is re-created from its resolved definition in the executing backend (same name, same ARN);
- Lambda code: each function runs its real handler in-process from its asset (runtime.py);
- S3 notifications name the uploading principal (`userIdentity.principalId`) from the uploading
  request's credentials, as S3's do (uploader.py);
- CloudWatch Logs' metric extraction: the EMF lines a function writes become metrics in moto's
  CloudWatch (emf.py), where the canary check reads them; alarms are stored, not evaluated;
- resources moto's CloudFormation skips (stage, account, alarms, bucket policies) are listed.
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
import time
import uuid
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from moto import mock_aws
from moto import settings as moto_settings
from moto.cloudformation.models import cloudformation_backends
from moto.cloudformation.parsing import clean_json
from moto.core import DEFAULT_ACCOUNT_ID

from layers.assembly import Assembly, read_assemblies
from stepwise.local import emf, emulated, uploader
from stepwise.local.assembly import synthesize
from stepwise.local.runtime import FunctionRuntime, LambdaRouter, answer_custom_resources

REGION = "us-east-1"
ACCOUNT = DEFAULT_ACCOUNT_ID
BOOTSTRAP_QUALIFIER = "hnb659fds"
BOOTSTRAP_VERSION = "30"
MOTO_CONFIG = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}


@dataclass
class Emulation:
    logical_id: str
    resource_type: str
    how: str


@dataclass
class Deployment:
    stack_id: str  # the app's own stack (c.STACK_NAME): the one the CLI names
    outputs: dict[str, str]  # every stack's outputs
    resources: list[dict[str, str]]  # every stack's: logical id, physical id, type, status, stack name
    emulated: list[Emulation] = field(default_factory=list)
    skipped: list[Emulation] = field(default_factory=list)
    stacks: dict[str, str] = field(default_factory=dict)  # stack name -> stack id, in deployment order

    def physical_id(self, logical_id: str, stack_name: str | None = None) -> str:
        return next(
            r["PhysicalResourceId"]
            for r in self.resources
            if r["LogicalResourceId"] == logical_id and stack_name in (None, r.get("StackName"))
        )


class LocalCloud:
    """A moto-backed copy of the app's stacks, deployed from the templates the CDK app synthesizes.

    `assembly` is the app's own stack (c.STACK_NAME, the one the CLI and the API outputs name);
    `assemblies` is every stack of the cloud assembly in deployment order, that one included.
    """

    def __init__(
        self,
        outdir: Path | None = None,
        context: dict[str, Any] | None = None,
        log_level: str = "WARNING",
        app_module: str = "infra.app",
    ):
        self.app_module = app_module
        self._tmp = None if outdir else tempfile.TemporaryDirectory(prefix="stepwise-cdk-")
        self.outdir = outdir or Path(self._tmp.name)  # type: ignore[union-attr]
        self.context = context or {}
        self.log_level = log_level
        self.router = LambdaRouter()
        self._mock = mock_aws(config=MOTO_CONFIG)  # type: ignore[call-overload]
        self.assembly: Assembly | None = None
        self.assemblies: list[Assembly] = []
        self.deployment: Deployment | None = None
        self._mock_started = False

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> Deployment:
        # Assets are read where they lie (content-addressed build dirs) instead of being copied into
        # a fresh cloud assembly each time, as SAM does with the same CDK context key.
        context = {"aws:cdk:disable-asset-staging": True, **self.context}
        self.assembly = synthesize(self.outdir, context, self.app_module)
        self.assemblies = read_assemblies(self.outdir)
        self._mock.start()
        self._mock_started = True
        self.router.install()
        uploader.install()
        emulated.register()
        # moto asks Docker where its server is, for custom resources' cfn-response URL; the
        # local cloud answers custom resources itself, so no Docker is asked.
        self._server_host = moto_settings.moto_server_host
        moto_settings.moto_server_host = lambda: "http://127.0.0.1"  # type: ignore[assignment]
        try:
            self._bootstrap()
            self._publish_assets()
            self.deployment = self._deploy()
            self._register_functions()
            self._emulate()
        except Exception:
            self.stop()
            raise
        return self.deployment

    def shutdown_functions(self, name_contains: str = "") -> list[str]:
        """Recycle execution environments (Lambda's SHUTDOWN phase: exit hooks run, buffers flush)."""
        done = []
        for name, runtime in self.router.functions.items():
            if name_contains in name:
                runtime.shutdown()
                done.append(name)
        return done

    def stop(self) -> None:
        with contextlib.suppress(Exception):  # flush what handlers buffered while moto still answers
            if self._mock_started:
                self.shutdown_functions()
        self.router.uninstall()
        uploader.uninstall()
        if hasattr(self, "_server_host"):
            moto_settings.moto_server_host = self._server_host
        with contextlib.suppress(RuntimeError):  # already stopped
            self._mock.stop()
        if self._tmp:
            self._tmp.cleanup()

    def __enter__(self) -> LocalCloud:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name=REGION)

    @property
    def logs_dir(self) -> Path:
        """Each function's log (what CloudWatch Logs would hold): <logs_dir>/<logical id>.log."""
        return self.outdir / "logs"

    @property
    def outputs(self) -> dict[str, str]:
        assert self.deployment is not None
        return self.deployment.outputs

    # -- cdk bootstrap -------------------------------------------------------------------
    def _bootstrap(self) -> None:
        self.client("ssm").put_parameter(
            Name=f"/cdk-bootstrap/{BOOTSTRAP_QUALIFIER}/version", Value=BOOTSTRAP_VERSION, Type="String"
        )
        self.client("s3").create_bucket(Bucket=self._assets_bucket())

    def _assets_bucket(self) -> str:
        return f"cdk-{BOOTSTRAP_QUALIFIER}-assets-{ACCOUNT}-{REGION}"

    def _publish_assets(self) -> None:
        """Upload each file asset where `cdk deploy` would. Layer assets are published as a zip of
        their file list: their packages never run here (handlers import this environment's), and
        copying hundreds of MB into moto would only cost time."""
        s3 = self.client("s3")
        layer_keys = {
            str(res["Properties"]["Content"].get("S3Key"))
            for assembly in self.assemblies
            for res in assembly.resources_of_type("AWS::Lambda::LayerVersion").values()
        }
        published: set[tuple[str, str]] = set()
        for asset in (asset for assembly in self.assemblies for asset in assembly.file_assets):
            bucket = asset.bucket_template.replace("${AWS::AccountId}", ACCOUNT).replace("${AWS::Region}", REGION)
            if (bucket, asset.object_key) in published:
                continue  # an asset two stacks share is published once
            published.add((bucket, asset.object_key))
            if asset.object_key in layer_keys and asset.source.is_dir():
                s3.put_object(Bucket=bucket, Key=asset.object_key, Body=_manifest_zip(asset.source))
                continue
            if not asset.source.exists():
                # code CDK ships in its own package (BucketDeployment's handler and its AWS CLI layer):
                # with staging off its path is the synth's jsii kernel directory, gone once synth
                # ends; a custom resource's handler never runs here, so an empty listing stands in
                s3.put_object(Bucket=bucket, Key=asset.object_key, Body=_manifest_zip(asset.source / "-"))
                continue
            source = _zipped(asset.id, asset.source) if asset.source.is_dir() else asset.source
            with source.open("rb") as body:
                s3.put_object(Bucket=bucket, Key=asset.object_key, Body=body)

    # -- cdk deploy ----------------------------------------------------------------------
    def _deploy(self) -> Deployment:
        """Deploy every stack in order; the deployment merges their resources and outputs."""
        assert self.assembly is not None
        stacks = [self._deploy_stack(assembly) for assembly in self.assemblies]
        ids = {assembly.stack_name: stack.stack_id for assembly, stack in zip(self.assemblies, stacks, strict=True)}
        outputs: dict[str, str] = {}
        for assembly, stack in zip(self.assemblies, stacks, strict=True):
            clash = sorted(set(outputs) & set(stack.outputs))
            if clash:
                raise RuntimeError(f"local deploy: stack {assembly.stack_name} repeats the outputs {clash}")
            outputs.update(stack.outputs)
        return Deployment(
            stack_id=ids[self.assembly.stack_name],
            outputs=outputs,
            resources=[r for stack in stacks for r in stack.resources],
            skipped=[e for stack in stacks for e in stack.skipped],
            emulated=[e for stack in stacks for e in stack.emulated],
            stacks=ids,
        )

    def _deploy_stack(self, assembly: Assembly) -> Deployment:
        cfn = self.client("cloudformation")
        answered = len(self.router.custom_resources)  # the stacks deployed before answered theirs
        stack_id = cfn.create_stack(
            StackName=assembly.stack_name,
            TemplateBody=json.dumps(assembly.template),
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
        )["StackId"]
        expected = answered + sum(
            1
            for r in assembly.template["Resources"].values()
            if r["Type"].startswith("Custom::") and r["Type"] != "Custom::S3BucketNotifications"
        )
        deadline = time.monotonic() + 60  # moto invokes custom-resource providers from threads
        while len(self.router.custom_resources) < expected and time.monotonic() < deadline:
            time.sleep(0.02)
        answer_custom_resources(self.router.custom_resources[answered:])
        described = cfn.describe_stacks(StackName=stack_id)["Stacks"][0]
        if not described["StackStatus"].endswith("_COMPLETE") or "ROLLBACK" in described["StackStatus"]:
            events = cfn.describe_stack_events(StackName=stack_id)["StackEvents"]
            failed = [e for e in events if "FAILED" in e.get("ResourceStatus", "")]
            raise RuntimeError(f"local deploy failed: {described['StackStatus']} {failed[:5]}")
        resources = cfn.describe_stack_resources(StackName=stack_id)["StackResources"]
        outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
        resources = [{**r, "StackName": assembly.stack_name} for r in resources if "LogicalResourceId" in r]
        deployed = {r["LogicalResourceId"] for r in resources}
        template_types = {k: v["Type"] for k, v in assembly.template["Resources"].items()}
        emulated_here = [
            Emulation(
                r["LogicalResourceId"], r["ResourceType"], "emulated from its properties (stepwise/local/emulated.py)"
            )
            for r in resources
            if template_types.get(r["LogicalResourceId"]) in emulated.EMULATED_TYPES
        ]
        skipped = [
            Emulation(lid, res["Type"], "not created by moto's CloudFormation")
            for lid, res in assembly.template["Resources"].items()
            if lid not in deployed and res["Type"] != "AWS::CDK::Metadata"
        ]
        return Deployment(
            stack_id=stack_id,
            outputs=outputs,
            resources=resources,
            skipped=skipped,
            emulated=emulated_here,
            stacks={assembly.stack_name: stack_id},
        )

    def resolve(self, value: Any, stack_name: str | None = None) -> Any:
        """Resolve intrinsic functions (Ref, Fn::GetAtt, Fn::Join, Fn::ImportValue, ...) against a
        deployed stack: `stack_name`'s, or the app's own stack."""
        assert self.deployment is not None
        stack_id = self.deployment.stacks[stack_name] if stack_name else self.deployment.stack_id
        stack = cloudformation_backends[ACCOUNT][REGION].stacks[stack_id]
        return clean_json(value, stack.resource_map)

    # -- functions -----------------------------------------------------------------------
    def _register_functions(self) -> None:
        assert self.assembly is not None and self.deployment is not None
        lam = self.client("lambda")
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        metrics_put = emf.cloudwatch_put(self.client("cloudwatch"))  # the EMF lines functions log
        functions = (
            (assembly, logical_id, res)
            for assembly in self.assemblies
            for logical_id, res in assembly.resources_of_type("AWS::Lambda::Function").items()
        )
        for assembly, logical_id, res in functions:
            props = res["Properties"]
            code_dir = assembly.function_code_dir(logical_id)
            handler = props.get("Handler")
            if props.get("PackageType") == "Image":
                handler = (props.get("ImageConfig", {}).get("Command") or [None])[0]
            if code_dir is None or not handler or not (code_dir.is_dir()):
                continue  # inline code (CDK custom-resource providers): not ours to run
            name = self.deployment.physical_id(logical_id, assembly.stack_name)
            config = lam.get_function_configuration(FunctionName=name)
            self.router.add(
                FunctionRuntime(
                    name=name,
                    arn=config["FunctionArn"],
                    code_dir=code_dir,
                    handler=handler,
                    environment=config.get("Environment", {}).get("Variables", {}),
                    memory_mb=int(props.get("MemorySize", 128)),
                    timeout_seconds=int(props.get("Timeout", 3)),
                    log_level=self.log_level,
                    log_file=self.logs_dir / f"{logical_id}.log",
                    metrics_put=metrics_put,
                )
            )

    # -- what moto cannot run ------------------------------------------------------------
    def _emulate(self) -> None:
        assert self.deployment is not None
        for assembly in self.assemblies:
            self._emulate_stack(assembly)

    def _emulate_stack(self, assembly: Assembly) -> None:
        assert self.deployment is not None
        stack_name = assembly.stack_name
        for logical_id, res in assembly.template["Resources"].items():
            kind = res["Type"]
            if kind == "Custom::S3BucketNotifications":
                props = self.resolve(res["Properties"], stack_name)
                config = props.get("NotificationConfiguration", {})
                self.client("s3").put_bucket_notification_configuration(
                    Bucket=props["BucketName"], NotificationConfiguration=_notification_config(config)
                )
                self.deployment.emulated.append(
                    Emulation(logical_id, kind, "bucket notifications applied from NotificationConfiguration")
                )
            elif kind == "AWS::StepFunctions::StateMachine":
                self._recreate_state_machine(logical_id, stack_name)
            elif kind == "AWS::S3::Bucket":
                applied = self._complete_bucket(logical_id, res.get("Properties", {}), stack_name)
                if applied:
                    self.deployment.emulated.append(
                        Emulation(logical_id, kind, f"applied what moto's CloudFormation ignores: {', '.join(applied)}")
                    )
            elif kind.startswith("Custom::") or kind == "AWS::CloudFormation::CustomResource":
                self.deployment.emulated.append(Emulation(logical_id, kind, "custom resource: handler not run"))

    def _complete_bucket(self, logical_id: str, props: dict[str, Any], stack_name: str) -> list[str]:
        """moto's CloudFormation creates buckets with encryption and tags only: apply the
        template's versioning, public access block and lifecycle rules through the S3 API."""
        assert self.deployment is not None
        s3 = self.client("s3")
        bucket = self.deployment.physical_id(logical_id, stack_name)
        resolved = self.resolve({k: v for k, v in props.items() if k in _BUCKET_EXTRAS}, stack_name)
        applied = []
        if "VersioningConfiguration" in resolved:
            s3.put_bucket_versioning(
                Bucket=bucket, VersioningConfiguration={"Status": resolved["VersioningConfiguration"]["Status"]}
            )
            applied.append("versioning")
        if "PublicAccessBlockConfiguration" in resolved:
            s3.put_public_access_block(
                Bucket=bucket, PublicAccessBlockConfiguration=resolved["PublicAccessBlockConfiguration"]
            )
            applied.append("public access block")
        lock = resolved.get("ObjectLockConfiguration")
        if lock and props.get("ObjectLockEnabled"):
            s3.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration=_object_lock(lock))
            applied.append("object lock")
        rules = resolved.get("LifecycleConfiguration", {}).get("Rules", [])
        if rules:
            with contextlib.suppress(Exception):  # a rule moto's S3 API refuses stays reported, not fatal
                s3.put_bucket_lifecycle_configuration(
                    Bucket=bucket, LifecycleConfiguration={"Rules": [_lifecycle_rule(r) for r in rules]}
                )
                applied.append("lifecycle rules")
        return applied

    def _recreate_state_machine(self, logical_id: str, stack_name: str) -> None:
        from moto.stepfunctions.models import stepfunctions_backends
        from moto.stepfunctions.parser.api import InvalidDefinition
        from moto.stepfunctions.parser.models import stepfunctions_parser_backends

        assert self.deployment is not None
        arn = self.deployment.physical_id(logical_id, stack_name)
        standard = stepfunctions_backends[ACCOUNT][REGION]
        machine = standard.describe_state_machine(arn)
        executing = stepfunctions_parser_backends[ACCOUNT][REGION]
        try:
            self._create_executing(executing, machine)
        except InvalidDefinition as exc:
            # Functions that would start it see it unset, so they take their in-process path.
            blanked = self._unset_env_values(arn)
            self.deployment.emulated.append(
                Emulation(
                    logical_id,
                    "AWS::StepFunctions::StateMachine",
                    f"deployed, but moto's interpreter cannot execute it ({exc.message[:120]}); "
                    f"unset for the functions that would start it: {', '.join(blanked) or 'none'}",
                )
            )
            return
        self.deployment.emulated.append(
            Emulation(logical_id, "AWS::StepFunctions::StateMachine", "re-created in moto's executing backend")
        )

    def _unset_env_values(self, value: str) -> list[str]:
        changed = []
        for runtime in self.router.functions.values():
            for key, current in list(runtime.environment.items()):
                if current == value:
                    runtime.environment[key] = ""
                    changed.append(f"{key} of {runtime.name}")
        return changed

    @staticmethod
    def _create_executing(executing: Any, machine: Any) -> None:
        executing.create_state_machine(
            name=machine.name,
            definition=machine.definition,
            roleArn=machine.roleArn,
            loggingConfiguration=machine.loggingConfiguration,  # type: ignore[arg-type]
            tracingConfiguration=machine.tracingConfiguration,  # type: ignore[arg-type]
            sm_type=getattr(machine, "type", None),
        )

    # -- schedules (moto's EventBridge does not deliver to Lambda or Step Functions) ---------
    def fire_schedules(self, name_contains: str = "") -> list[str]:
        """Deliver each scheduled rule's event to its targets now; returns what was fired."""
        fired = []
        rules = (
            (assembly.stack_name, logical_id, res)
            for assembly in self.assemblies
            for logical_id, res in assembly.resources_of_type("AWS::Events::Rule").items()
        )
        for stack_name, logical_id, res in rules:
            props = res["Properties"]
            if "ScheduleExpression" not in props or name_contains not in logical_id:
                continue
            if props.get("State", "ENABLED") != "ENABLED":
                continue
            for target in self.resolve(props.get("Targets", []), stack_name):
                arn = str(target["Arn"])
                event = scheduled_event(logical_id, target)
                if ":lambda:" in arn:
                    self.client("lambda").invoke(FunctionName=arn, InvocationType="Event", Payload=json.dumps(event))
                elif ":states:" in arn:
                    self.client("stepfunctions").start_execution(stateMachineArn=arn, input=json.dumps(event))
                fired.append(f"{logical_id} -> {arn}")
        return fired


_BUCKET_EXTRAS = (
    "VersioningConfiguration",
    "PublicAccessBlockConfiguration",
    "LifecycleConfiguration",
    "ObjectLockConfiguration",
)


def _object_lock(lock: dict[str, Any]) -> dict[str, Any]:
    """A CloudFormation ObjectLockConfiguration in the S3 API's shape (retention periods as ints)."""
    out: dict[str, Any] = {"ObjectLockEnabled": lock.get("ObjectLockEnabled", "Enabled")}
    retention = lock.get("Rule", {}).get("DefaultRetention")
    if retention:
        out["Rule"] = {"DefaultRetention": {k: (int(v) if k in ("Days", "Years") else v) for k, v in retention.items()}}
    return out


def _lifecycle_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """A CloudFormation lifecycle rule in the S3 API's shape."""
    out: dict[str, Any] = {"ID": rule.get("Id", "rule"), "Status": rule.get("Status", "Enabled")}
    filters: dict[str, Any] = {}
    if "Prefix" in rule:
        filters["Prefix"] = rule["Prefix"]
    if rule.get("TagFilters"):
        tags = rule["TagFilters"]
        filters = {"And": {**filters, "Tags": tags}} if (filters or len(tags) > 1) else {"Tag": tags[0]}
    out["Filter"] = filters
    if "ExpirationInDays" in rule:
        out["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
    if "NoncurrentVersionExpiration" in rule:
        out["NoncurrentVersionExpiration"] = {
            "NoncurrentDays": int(rule["NoncurrentVersionExpiration"]["NoncurrentDays"])
        }
    if "AbortIncompleteMultipartUpload" in rule:
        out["AbortIncompleteMultipartUpload"] = {
            "DaysAfterInitiation": int(rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"])
        }
    if rule.get("Transitions"):
        out["Transitions"] = [
            {"Days": int(t["TransitionInDays"]), "StorageClass": t["StorageClass"]} for t in rule["Transitions"]
        ]
    return out


def _manifest_zip(path: Path) -> bytes:
    files = sorted(p for p in path.rglob("*") if p.is_file())
    listing = "".join(f"{p.stat().st_size}\t{p.relative_to(path).as_posix()}\n" for p in files)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("STEPWISE_LOCAL_LAYER_MANIFEST.txt", listing)
    return buf.getvalue()


ASSET_CACHE = Path(__file__).resolve().parents[2] / ".build" / "local-assets"


def _zipped(asset_id: str, path: Path) -> Path:
    """The directory asset zipped as `cdk deploy` would publish it, kept by its content hash
    (the asset id) so the next local cloud reuses it. Stored, not deflated: moto only keeps it."""
    target = ASSET_CACHE / f"{asset_id}.zip"
    if not target.exists():
        ASSET_CACHE.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f"{target.name}.{uuid.uuid4().hex}.tmp")
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
            for file in sorted(path.rglob("*")):
                if file.is_file():
                    zf.write(file, file.relative_to(path).as_posix())
        tmp.replace(target)
    return target


def _notification_config(config: dict[str, Any]) -> dict[str, Any]:
    """CDK's custom resource takes the S3 API's shape already; drop empty sections."""
    return {k: v for k, v in config.items() if v}


def scheduled_event(rule_id: str, target: dict[str, Any]) -> dict[str, Any]:
    """What EventBridge delivers to a scheduled rule's target now: its constant Input, its
    InputTransformer applied to the scheduled event (`<name>` placeholders filled from
    InputPathsMap's `$.a.b` paths, strings quoted as EventBridge quotes them), or the event itself."""
    event: dict[str, Any] = {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{rule_id}"],
        "detail": {},
    }
    if "Input" in target:
        return json.loads(target["Input"])  # type: ignore[no-any-return]
    transformer = target.get("InputTransformer")
    if not transformer:
        return event
    text = str(transformer["InputTemplate"])
    for name, path in (transformer.get("InputPathsMap") or {}).items():
        value: Any = event
        for part in str(path).removeprefix("$.").split("."):
            value = value.get(part) if isinstance(value, dict) else None
        text = text.replace(f'"<{name}>"', json.dumps(value)).replace(f"<{name}>", json.dumps(value))
    return json.loads(text)  # type: ignore[no-any-return]
