"""Where the CLI's commands go: a local cloud (`stepwise local up` / `demo --serve`) or a real
deployed stack, resolved from its CloudFormation outputs.

Every command talks to a `Target`: `target.client("s3")` for the stores, `target.api(...)` for
the HTTPS API (SigV4-signed, so the API sees who is calling).
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from infra import constants as c

LOCAL_REGION = "us-east-1"
LOCAL_INFO_PATH = "/_local/info"


def local_credentials(identity: str) -> Credentials:
    """In the local cloud the access key names the caller: `--as alice` signs as `alice`."""
    return Credentials(access_key=f"LOCAL{identity}", secret_key="local-secret")


@dataclass
class ApiReply:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass
class Target:
    api_url: str
    outputs: dict[str, str]
    region: str = LOCAL_REGION
    aws_endpoint: str | None = None  # set for a local cloud served over HTTP
    local: bool = False
    identity: str = "operator"
    in_process: bool = False  # the local cloud lives in this process (demo, tests)
    stack: str = c.STACK_NAME

    # -- AWS clients ---------------------------------------------------------------------
    def client(self, service: str) -> Any:
        kwargs: dict[str, Any] = {"region_name": self.region}
        if self.local:
            creds = local_credentials(self.identity)
            kwargs.update(aws_access_key_id=creds.access_key, aws_secret_access_key=creds.secret_key)
            if self.aws_endpoint:
                kwargs["endpoint_url"] = self.aws_endpoint
        return boto3.client(service, **kwargs)

    def output(self, name: str) -> str:
        try:
            return self.outputs[name]
        except KeyError:
            raise SystemExit(f"the stack has no output {name!r}; is it deployed with this version?") from None

    @property
    def data_bucket(self) -> str:
        return self.output(c.OUT_DATA_BUCKET)

    @property
    def artifacts_bucket(self) -> str:
        return self.output(c.OUT_ARTIFACTS_BUCKET)

    # -- HTTPS API -----------------------------------------------------------------------
    def api(self, method: str, path: str, body: Any = None, *, identity: str | None = None) -> ApiReply:
        url = self.api_url.rstrip("/") + path
        data = None if body is None else json.dumps(body).encode()
        headers = {"content-type": "application/json", "accept": "application/json"}
        request = AWSRequest(method=method, url=url, data=data, headers=headers)
        creds = local_credentials(identity or self.identity) if self.local else _session_credentials()
        SigV4Auth(creds, "execute-api", self.region).add_auth(request)
        prepared = urllib.request.Request(url, data=data, method=method, headers=dict(request.headers.items()))
        try:
            with urllib.request.urlopen(prepared, timeout=60) as resp:
                raw = resp.read()
                status = resp.status
                reply_headers = dict(resp.headers.items())
        except urllib.error.HTTPError as err:
            raw = err.read()
            status = err.code
            reply_headers = dict(err.headers.items())
        try:
            parsed: Any = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode(errors="replace")
        return ApiReply(status=status, body=parsed, headers=reply_headers)


def _session_credentials() -> Credentials:
    creds = boto3.Session().get_credentials()
    if creds is None:
        raise SystemExit("no AWS credentials found for signing API requests")
    return creds.get_frozen_credentials()  # type: ignore[return-value]


def from_endpoint(endpoint: str, identity: str = "operator") -> Target:
    """A local cloud served by `stepwise local up`: its info route names everything else."""
    try:
        with urllib.request.urlopen(endpoint.rstrip("/") + LOCAL_INFO_PATH, timeout=10) as resp:
            info = json.loads(resp.read())
    except (urllib.error.URLError, OSError) as exc:
        raise SystemExit(f"no local cloud answers at {endpoint} ({exc}); start one with `stepwise local up`") from exc
    return Target(
        api_url=info["api_url"],
        outputs=info["outputs"],
        region=info["region"],
        aws_endpoint=info["aws_endpoint"],
        local=True,
        identity=identity,
        stack=info.get("stack") or c.STACK_NAME,
    )


def from_stack(stack: str, region: str, identity: str = "operator") -> Target:
    """A deployed stack, resolved from its CloudFormation outputs."""
    cfn = boto3.client("cloudformation", region_name=region)
    described = cfn.describe_stacks(StackName=stack)["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
    return Target(api_url=outputs[c.OUT_API_URL], outputs=outputs, region=region, identity=identity, stack=stack)


def resolve(endpoint: str | None, stack: str | None, region: str | None, identity: str) -> Target:
    if stack:
        return from_stack(stack, region or os.environ.get("AWS_REGION", "us-east-1"), identity)
    endpoint = endpoint or os.environ.get("STEPWISE_ENDPOINT") or "http://127.0.0.1:8787"
    return from_endpoint(endpoint, identity)


def add_page_arguments(parser: Any, what: str) -> None:
    """`--limit N` (items per page) and `--all` (follow next_token to the last page)."""
    parser.add_argument("--limit", type=int, default=100, help=f"{what} per page (1-1000, default 100)")
    parser.add_argument("--all", action="store_true", help=f"follow the pages to the last of the {what}")


def get_pages(
    target: Target, path: str, key: str, query: dict[str, str], *, limit: int, every: bool
) -> tuple[ApiReply, list[Any], str | None]:
    """GET a paginated list: one page, or with `every` each page after it (following next_token).
    Returns the last reply (not ok: stop and report it), the items, and the token of the page not
    read (None when the list is complete)."""
    items: list[Any] = []
    token: str | None = None
    while True:
        params = {**query, "limit": str(limit), **({"next_token": token} if token else {})}
        reply = target.api("GET", f"{path}?{urllib.parse.urlencode(params)}")
        if not reply.ok:
            return reply, items, None
        items += reply.body[key]
        token = reply.body.get("next_token")
        if not token or not every:
            return reply, items, token
