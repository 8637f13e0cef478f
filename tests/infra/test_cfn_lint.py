"""cfn-lint on the synthesized template of every stack: zero errors (warnings are printed, not failed); and the
variant with the optional WAF web ACL setting."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from typing import Any

import pytest

from stepwise.local.assembly import Assembly, synthesize

RUN_CFN_LINT = "import sys; from cfnlint.runner import main; sys.argv[0] = 'cfn-lint'; sys.exit(main())"


def _lint(assembly: Assembly) -> list[dict[str, Any]]:
    """cfn-lint's findings (JSON) on the assembly's template."""
    template = assembly.outdir / f"{assembly.stack_name}.template.json"
    proc = subprocess.run(
        [sys.executable, "-c", RUN_CFN_LINT, "--format", "json", str(template)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.stdout.strip(), f"cfn-lint produced no report (exit {proc.returncode}): {proc.stderr[-2000:]}"
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def _lint_errors(assembly: Assembly) -> list[str]:
    return [
        f"{e['Rule']['Id']} {e['Location']['Path']}: {e['Message']}" for e in _lint(assembly) if e["Level"] == "Error"
    ]


def test_template_cfn_lint_reports_no_errors(assemblies: list[Assembly]) -> None:
    # Given the synthesized template of each stack (the stores and the compute stack)
    assert len(assemblies) >= 2, [a.stack_name for a in assemblies]
    # When cfn-lint (the dev extra) checks them against the CloudFormation resource specification
    findings = [f for each in assemblies for f in _lint(each)]
    # Then there is no error; warnings and informational findings are reported only
    errors = [f for f in findings if f["Level"] == "Error"]
    levels = Counter(f"{f['Level']} {f['Rule']['Id']}" for f in findings)
    print(f"\ncfn-lint: {dict(sorted(levels.items()))}")
    assert errors == [], "\n".join(f"{e['Rule']['Id']} {e['Location']['Path']}: {e['Message']}" for e in errors)


WEB_ACL = "arn:aws:wafv2:us-east-1:123456789012:regional/webacl/stepwise/0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"


def test_template_with_the_waf_setting_associates_the_web_acl_and_lints_clean(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # Given the app synthesized with the optional WAF web ACL setting
    assembly = synthesize(tmp_path_factory.mktemp("cdk.out.waf"), context={"stepwise:waf_web_acl_arn": WEB_ACL})
    # Then the API stage is associated with that web ACL
    associations = assembly.resources_of_type("AWS::WAFv2::WebACLAssociation")
    assert [a["Properties"]["WebACLArn"] for a in associations.values()] == [WEB_ACL]
    (stage_id,) = assembly.resources_of_type("AWS::ApiGateway::Stage")
    assert stage_id in json.dumps(next(iter(associations.values()))["Properties"]["ResourceArn"])
    # And cfn-lint finds no error in that variant either
    errors = _lint_errors(assembly)
    assert errors == [], errors
