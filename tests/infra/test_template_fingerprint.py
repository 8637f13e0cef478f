"""The synthesized templates' fingerprint: how many resources of each type, and a hash of each
resource's properties keyed by logical id, over every stack of the app (stores and compute, their
imports as written), frozen in tests/infra/template_fingerprint.json.

A refactoring of infra/ must leave it unchanged: a changed logical id replaces the resource on the
next deploy (a table, a bucket, a waiting workflow), a changed property changes what is deployed.
Asset hashes, the functions code version and the package version (wherever they stand, the state
machine's definition included) are blanked first, so a change of functions/ or of a layer's
requirements does not move the fingerprint.

To change the template deliberately (a new resource, a new grant), review the failure's list of
added, removed and changed logical ids, then rewrite the file and commit it with the change:

    STEPWISE_UPDATE_FINGERPRINT=1 python -m pytest tests/infra/test_template_fingerprint.py
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from infra import constants as c
from stepwise.local.assembly import Assembly
from tests.infra.templates import merged_template

FROZEN = Path(__file__).with_name("template_fingerprint.json")
_ASSET_HASH = re.compile(r"\b[0-9a-f]{64}\b")
_BLANKED_ENV = (c.ENV_CODE_VERSION, c.ENV_VERSION)


def _blanked_values(resources: dict[str, dict[str, Any]]) -> set[str]:
    """The code and package versions the functions carry: they also stand inside other resources
    (the SageMaker training job's environment in the state machine's definition)."""
    values: set[str] = set()
    for resource in resources.values():
        variables = resource.get("Properties", {}).get("Environment", {}).get("Variables")
        if isinstance(variables, dict):
            values |= {str(variables[k]) for k in _BLANKED_ENV if variables.get(k)}
    return values


def _normalized(properties: dict[str, Any], blanked: set[str]) -> str:
    text = _ASSET_HASH.sub("<asset>", json.dumps(properties, sort_keys=True, separators=(",", ":")))
    for value in sorted(blanked, key=len, reverse=True):
        text = text.replace(json.dumps(value)[1:-1], "<blank>")
    return text


def fingerprint(template: dict[str, Any]) -> dict[str, Any]:
    resources: dict[str, dict[str, Any]] = template["Resources"]
    blanked = _blanked_values(resources)
    return {
        "types": dict(sorted(Counter(r["Type"] for r in resources.values()).items())),
        "resources": {
            logical_id: {
                "type": resource["Type"],
                "properties": hashlib.sha256(_normalized(resource.get("Properties", {}), blanked).encode()).hexdigest()[
                    :16
                ],
            }
            for logical_id, resource in sorted(resources.items())
        },
    }


def differences(frozen: dict[str, Any], now: dict[str, Any]) -> list[str]:
    before, after = frozen["resources"], now["resources"]
    found = [f"removed {k} ({before[k]['type']})" for k in sorted(set(before) - set(after))]
    found += [f"added {k} ({after[k]['type']})" for k in sorted(set(after) - set(before))]
    found += [f"changed {k} ({after[k]['type']})" for k in sorted(set(before) & set(after)) if before[k] != after[k]]
    for kind in sorted(set(frozen["types"]) | set(now["types"])):
        if frozen["types"].get(kind, 0) != now["types"].get(kind, 0):
            found.append(f"{kind}: {frozen['types'].get(kind, 0)} -> {now['types'].get(kind, 0)}")
    return found


def test_template_fingerprint_finds_a_renamed_and_a_changed_resource() -> None:
    # Given a template with two resources
    template = {"Resources": {"A1": {"Type": "T", "Properties": {"x": 1}}, "B1": {"Type": "U", "Properties": {}}}}
    frozen = fingerprint(template)
    # When one is renamed and the other's property changes
    changed = {"Resources": {"A2": {"Type": "T", "Properties": {"x": 1}}, "B1": {"Type": "U", "Properties": {"y": 2}}}}
    # Then both show, the counts per type do not
    assert differences(frozen, fingerprint(changed)) == ["removed A1 (T)", "added A2 (T)", "changed B1 (U)"]


def test_template_fingerprint_ignores_asset_hashes_and_code_versions() -> None:
    # Given a function whose code asset and code version change with functions/
    def fn(key: str, version: str) -> dict[str, Any]:
        props = {"Code": {"S3Key": f"{key * 64}.zip"}, "Environment": {"Variables": {c.ENV_CODE_VERSION: version}}}
        return {"Resources": {"Fn": {"Type": "AWS::Lambda::Function", "Properties": props}}}

    # Then the fingerprint does not move
    assert fingerprint(fn("a", "1111")) == fingerprint(fn("b", "2222"))


def test_template_fingerprint_is_the_frozen_one(assemblies: list[Assembly]) -> None:
    # Given the synthesized templates of every stack
    now = fingerprint(merged_template(assemblies, resolve_imports=False))
    if os.environ.get("STEPWISE_UPDATE_FINGERPRINT"):
        FROZEN.write_text(json.dumps(now, indent=1) + "\n")
        pytest.skip(f"rewrote {FROZEN.name}: review `git diff` before committing it")
    # Then every resource keeps its logical id and its properties (see the module docstring to update)
    assert differences(json.loads(FROZEN.read_text()), now) == []
