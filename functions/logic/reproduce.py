"""Reproducibility check: retrain a version from its recorded dataset version (the exact object,
sha256-verified), spec version and seed with the same code path as the train step, and compare the
holdout predictions with those of the recorded (sha256-verified) skops artifact.

Needs scikit-learn, numpy and pyarrow (the training image, or the operator's machine): imported
inside `reproduce` only.
"""

from __future__ import annotations

from functions.dal import artifacts as store
from functions.dal import specs as specs_dal
from functions.logic import lifecycle
from functions.logic.lineage import version_or_404
from functions.models.errors import InvalidInput
from functions.models.reproduction import ReproduceResult
from functions.models.settings import Settings


def reproduce(settings: Settings, model: str, number: int) -> ReproduceResult:
    import numpy as np

    from functions.logic import evaluation as ev
    from functions.logic import training as tr

    v = version_or_404(settings, model, number)
    if "skops" not in v.artifacts or not v.spec_name or v.dataset_version < 1:
        raise InvalidInput(f"{model} version {number} records no skops artifact, spec or dataset version")
    spec = specs_dal.get_spec(settings.metadata_table, v.spec_name, v.spec_version).spec
    ref = lifecycle.dataset_ref(settings, v.dataset, v.dataset_version)
    if ref.sha256 != v.data_sha256:
        raise InvalidInput(f"{v.dataset}@{v.dataset_version} now records sha256 {ref.sha256}, not {v.data_sha256}")
    table, columns = lifecycle.load_dataset(ref), ref.columns
    training_set_sha256, training_set_identical = "", None
    if v.feature_views:  # the point-in-time join again, from the recorded view and source versions
        from functions.logic import feature_training as ft

        table, _ = ft.build_training_set(settings, table, v.feature_views, event_time=v.event_time)
        training_set_sha256 = store.sha256_hex(ft.training_set_bytes(table))
        recorded_set = v.artifacts.get("training_set")
        training_set_identical = recorded_set is not None and recorded_set.sha256 == training_set_sha256
        columns = [*columns, *ft.view_columns(v.feature_views)]
    prepared = tr.prepare(spec, table, columns)
    if spec.split.seed != v.seed:
        raise InvalidInput(f"spec {v.spec_name} v{v.spec_version} has seed {spec.split.seed}, the version {v.seed}")
    fitted = tr.fit(spec, prepared)
    recorded = tr.load_skops(store.get_artifact(v.artifacts["skops"], f"skops artifact of {model} v{number}"))
    holdout = prepared.frame.iloc[prepared.holdout_idx]
    again = ev.sklearn_predictions(fitted.pipeline, holdout, spec.task)
    before = ev.sklearn_predictions(recorded, holdout, spec.task)
    if spec.task == "classification":
        assert again.labels is not None and before.labels is not None
        assert again.probabilities is not None and before.probabilities is not None
        mismatches = int(np.sum(again.labels != before.labels))
        diff = float(np.max(np.abs(again.probabilities - before.probabilities))) if len(holdout) else 0.0
    else:
        assert again.values is not None and before.values is not None
        mismatches = 0
        diff = float(np.max(np.abs(again.values - before.values))) if len(holdout) else 0.0
    return ReproduceResult(
        model=model,
        version=number,
        dataset=v.dataset,
        dataset_version=v.dataset_version,
        data_sha256=v.data_sha256,
        spec_name=v.spec_name,
        spec_version=v.spec_version,
        seed=v.seed,
        holdout_rows=len(prepared.holdout_idx),
        identical=mismatches == 0 and diff == 0.0 and training_set_identical is not False,
        label_mismatches=mismatches,
        max_abs_diff=diff,
        code_version=v.code_version,
        reproduced_with=settings.code_version,
        training_set_sha256=training_set_sha256,
        training_set_identical=training_set_identical,
    )
