"""The demo's wine files: the good one passes its contract, the bad one fails exactly its four rules."""

from __future__ import annotations

from pathlib import Path

from functions.logic.validation_files import BytesSource, validate_source
from functions.models.contracts import DataContract
from stepwise.demo_data import BAD_RULES, write_demo_files


def test_demo_data_good_passes_and_bad_fails_its_rules(tmp_path: Path) -> None:
    files = write_demo_files(tmp_path, training_spec="wine-quality")
    contract = DataContract.model_validate(files.contract)
    assert contract.training_spec == "wine-quality" and contract.key == "id" and contract.target == "label"
    good = validate_source(
        BytesSource(files.good.read_bytes()), files.good.name, contract, dataset="wine", contract_version=1
    )
    bad = validate_source(
        BytesSource(files.bad.read_bytes()), files.bad.name, contract, dataset="wine", contract_version=1
    )
    assert good.passed and good.rows == files.rows == 178
    assert sorted(bad.failed_rules) == sorted(BAD_RULES)
    assert all(r.offending == (2 if r.rule == "unique:id" else 1) for r in bad.rules if not r.passed)
