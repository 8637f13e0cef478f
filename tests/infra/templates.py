"""The app's stack templates read as one (tests/infra/conftest.py and the fingerprint)."""

from __future__ import annotations

from typing import Any

from stepwise.local.assembly import Assembly


def _exports(assemblies: list[Assembly]) -> dict[str, Any]:
    """Export name -> the value it exports (a Ref or Fn::GetAtt in the exporting stack)."""
    return {
        output["Export"]["Name"]: output["Value"]
        for assembly in assemblies
        for output in assembly.template.get("Outputs", {}).values()
        if isinstance(output.get("Export", {}).get("Name"), str)
    }


def _resolve_imports(value: Any, exports: dict[str, Any]) -> Any:
    if isinstance(value, dict):
        if set(value) == {"Fn::ImportValue"} and value["Fn::ImportValue"] in exports:
            return exports[value["Fn::ImportValue"]]
        return {k: _resolve_imports(v, exports) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_imports(v, exports) for v in value]
    return value


def merged_template(assemblies: list[Assembly], *, resolve_imports: bool = True) -> dict[str, Any]:
    """Every stack's template in one: the sections (Resources, Outputs, ...) merged, a logical id in
    two stacks an error; with `resolve_imports`, each import of another stack's export is replaced
    by the exported value."""
    merged: dict[str, Any] = {}
    for assembly in assemblies:
        for section, entries in assembly.template.items():
            if not isinstance(entries, dict):
                merged.setdefault(section, entries)
                continue
            into = merged.setdefault(section, {})
            clash = set(into) & set(entries) - {"BootstrapVersion", "CheckBootstrapVersion"}
            assert section != "Resources" or not clash, f"{assembly.stack_name} repeats {sorted(clash)}"
            into.update(entries)
    return _resolve_imports(merged, _exports(assemblies)) if resolve_imports else merged
