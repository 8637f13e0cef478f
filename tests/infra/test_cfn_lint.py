"""cfn-lint on the synthesized template: zero errors (warnings are printed, not failed)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

from stepwise.local.assembly import Assembly

RUN_CFN_LINT = "import sys; from cfnlint.runner import main; sys.argv[0] = 'cfn-lint'; sys.exit(main())"


def test_template_cfn_lint_reports_no_errors(assembly: Assembly) -> None:
    # Given the synthesized template
    template = assembly.outdir / f"{assembly.stack_name}.template.json"
    # When cfn-lint (the dev extra) checks it against the CloudFormation resource specification
    proc = subprocess.run(
        [sys.executable, "-c", RUN_CFN_LINT, "--format", "json", str(template)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.stdout.strip(), f"cfn-lint produced no report (exit {proc.returncode}): {proc.stderr[-2000:]}"
    findings = json.loads(proc.stdout)
    # Then there is no error; warnings and informational findings are reported only
    errors = [f for f in findings if f["Level"] == "Error"]
    levels = Counter(f"{f['Level']} {f['Rule']['Id']}" for f in findings)
    print(f"\ncfn-lint: {dict(sorted(levels.items()))}")
    assert errors == [], "\n".join(f"{e['Rule']['Id']} {e['Location']['Path']}: {e['Message']}" for e in errors)
