"""The local cloud is the real template: deployed into moto, health answered by the real handler."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from infra import constants as c
from stepwise.commands.status import render_status, stack_resources
from stepwise.local.session import LocalSession
from stepwise.target import Target


def test_local_cloud_deploys_every_resource_of_the_template_or_reports_it(local_session: LocalSession) -> None:
    # Given the synthesized templates (every stack: the stores and the compute stack) and what the
    # local cloud did with them
    cloud = local_session.cloud
    assert cloud.assembly is not None and cloud.deployment is not None
    assert len(cloud.assemblies) >= 2
    template_ids = {
        k
        for each in cloud.assemblies
        for k, v in each.template["Resources"].items()
        if v["Type"] != "AWS::CDK::Metadata"
    }
    deployed = {r["LogicalResourceId"] for r in cloud.deployment.resources}
    skipped = {e.logical_id for e in cloud.deployment.skipped}
    # Then every resource is either deployed or reported as skipped, nothing was added by hand
    assert deployed | skipped == template_ids
    assert deployed.isdisjoint(skipped)
    # And every function of ours is routed to its handler
    ours = [
        k
        for each in cloud.assemblies
        for k, v in each.template["Resources"].items()
        if v["Type"] == "AWS::Lambda::Function" and each.function_code_dir(k) is not None
    ]
    assert len(cloud.router.functions) == len(ours) > 0


def test_local_cloud_health_over_http_comes_from_the_real_handler(local: Target) -> None:
    # When the health route is called over HTTP, signed as an operator
    reply = local.api("GET", "/v1/health")
    # Then the real handler answered, with each store reachable through moto
    assert reply.status == 200, reply.body
    assert reply.body["status"] == "ok"
    assert {s["name"] for s in reply.body["stores"] if s["ok"]} == {"data", "artifacts", "registry", "metadata"}


def test_local_cloud_unknown_route_is_json_404_and_wrong_method_is_json_405(local: Target) -> None:
    missing = local.api("GET", "/v1/no-such-thing")
    wrong = local.api("DELETE", "/v1/health")
    assert missing.status == 404 and missing.body["error"] == "NotFound"
    assert wrong.status == 405 and wrong.body["error"] == "MethodNotAllowed"
    assert "Traceback" not in json.dumps(missing.body) + json.dumps(wrong.body)


def test_local_cloud_plain_unsigned_http_works_for_exploration(local: Target) -> None:
    with urllib.request.urlopen(local.api_url + "/v1/health", timeout=30) as resp:
        assert resp.status == 200
        assert json.loads(resp.read())["status"] == "ok"


def test_status_lists_the_deployed_resources_and_health(local: Target) -> None:
    text, healthy = render_status(local)
    assert healthy
    for resource in stack_resources(local):
        assert resource["LogicalResourceId"] in text


def test_local_cloud_buckets_get_the_templates_versioning_and_public_access_block(local: Target) -> None:
    # moto's CloudFormation ignores these properties; the local cloud applies them from the template
    s3 = local.client("s3")
    for bucket in (local.data_bucket, local.artifacts_bucket):
        assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
        block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
        assert all(block.values())
    version_id = s3.put_object(Bucket=local.data_bucket, Key="probe/versioned.txt", Body=b"x")["VersionId"]
    assert version_id and version_id != "null"


def test_local_cloud_strict_auth_holds_each_persona_to_its_policy(local_session: LocalSession, local: Target) -> None:
    # Given strict auth with one caller per persona (the server is this module's: restored after)
    from tests.infra.test_personas import MATRIX, PERSONAS

    api = local_session.api
    assert api is not None
    saved = (api.strict_auth, api.personas)
    api.strict_auth, api.personas = True, {f"as-{p.lower()}": p for p in PERSONAS}
    try:
        # When each persona calls every route (a body no route accepts: nothing changes)
        for route, allowed in sorted(MATRIX.items()):
            method, path = route.split(" ", 1)
            concrete = path.replace("{name}", "no-such-model").replace("{version}", "1")
            concrete = concrete.replace("{approval_id}", "no-such-model-1").replace("{request_id}", "no-such-req")
            for persona in PERSONAS:
                reply = local.api(method, concrete, None if method == "GET" else [], identity=f"as-{persona.lower()}")
                refused = reply.status == 403 and reply.body.get("error") == "ACCESS_DENIED"
                # Then the gateway refuses exactly where the matrix says so
                assert refused == (persona not in allowed), (persona, route, reply.status, reply.body)
    finally:
        api.strict_auth, api.personas = saved


def test_local_cloud_materializes_a_views_new_source_version_and_ignores_an_older_one(
    local: Target, tmp_path: Path
) -> None:
    # Given a small aggregate table, its contract, a first version and a view over it
    from stepwise.commands.data import upload
    from stepwise.demo_features import STATS_CONTRACT, VIEW, stats_table, write_parquet

    source, view = "online-stats", "online-customer"
    assert local.api("PUT", f"/v1/datasets/{source}/contract", STATS_CONTRACT).ok
    first = stats_table(customers=6, weeks=3)
    assert upload(local, write_parquet(first, tmp_path / "v1.parquet"), source).passed
    assert local.api("PUT", f"/v1/feature-views/{view}", {**VIEW, "source": source}).ok
    # When a newer version of the source passes validation (announced to the materialization
    # function, whose workflow the local cloud runs in-process)
    newer = stats_table(customers=6, weeks=4)
    assert upload(local, write_parquet(newer, tmp_path / "v2.parquet"), source).passed
    # Then the view's latest row per customer is online, from version 2
    runs = local.api("GET", f"/v1/feature-views/{view}/materializations")
    assert runs.ok, runs.body
    (run,) = runs.body["materializations"]
    assert (run["status"], run["trigger"], run["source_version"]) == ("SUCCEEDED", "validation", 2), run
    table = local.output(c.OUT_ONLINE_TABLE)
    attribute = f"view:{view}"  # each customer's item holds the view's entry under its name
    items = local.client("dynamodb").scan(TableName=table)["Items"]
    mine = [i[attribute]["M"] for i in items if attribute in i]
    assert len(mine) == 6 and {i["source_version"]["N"] for i in mine} == {"2"}
    # and the view's own alarms exist, made by that first successful run (README "Online store")
    names = {a["AlarmName"] for a in local.client("cloudwatch").describe_alarms()["MetricAlarms"]}
    assert {n.rsplit(f"-view-{view}-", 1)[-1] for n in names if f"-view-{view}-" in n} == {"freshness", "lookups"}
    # and materializing the older version on demand changes nothing
    older = local.api("POST", f"/v1/feature-views/{view}/materialize", {"version": 1})
    assert older.status == 202, older.body
    again = local.api("GET", f"/v1/feature-views/{view}/materializations/{older.body['materialization_id']}")
    assert again.body["status"] == "SUCCEEDED" and again.body["entities_written"] == 0, again.body
    after = [i[attribute]["M"] for i in local.client("dynamodb").scan(TableName=table)["Items"] if attribute in i]
    assert sorted(map(json.dumps, after)) == sorted(map(json.dumps, mine))
