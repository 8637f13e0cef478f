"""The local API server's own pieces: path templates and caller identity from SigV4."""

from __future__ import annotations

from stepwise.local.server import Route, _compile, _identity


def test_compile_matches_path_parameters_and_greedy_proxy() -> None:
    pattern, params = _compile("/v1/models/{name}/versions/{version}")
    match = pattern.match("/v1/models/churn/versions/12")
    assert params == ("name", "version")
    assert match is not None and match.groups() == ("churn", "12")
    assert pattern.match("/v1/models/churn/versions") is None
    proxy, names = _compile("/files/{path+}")
    assert names == ("path",)
    assert proxy.match("/files/a/b/c") is not None


def test_identity_comes_from_the_signing_access_key() -> None:
    header = "AWS4-HMAC-SHA256 Credential=LOCALalice/20261126/us-east-1/execute-api/aws4_request, SignedHeaders=host"
    who = _identity({"Authorization": header})
    assert who is not None
    assert who["caller"] == "alice"
    assert who["userArn"].endswith(":user/alice")


def test_identity_is_none_for_an_unsigned_request() -> None:
    assert _identity({"accept": "application/json"}) is None


def test_request_model_check_refuses_a_deeply_nested_body_as_400_not_500() -> None:
    # Given a route with the stack's request model (a JSON object) and a body nested 5,000 levels
    pattern, params = _compile("/v1/approvals/{approval_id}/approve")
    route = Route("POST", "/v1/approvals/{approval_id}/approve", "arn", "AWS_IAM", pattern, params, "object")
    deep = b"[" * 5000 + b"]" * 5000
    # When the gateway's check reads it, Then it is refused like any other invalid body (API Gateway's 400)
    assert route.body_error({"Content-Type": "application/json"}, deep) == "Invalid request body"
    assert route.body_error({}, b'{"reason": ' + deep + b"}") == "Invalid request body"
