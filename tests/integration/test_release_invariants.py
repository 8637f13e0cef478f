"""Random sequences of release operations on moto keep the registry's invariants."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from functions.dal import audit
from functions.logic import releases
from functions.models.audit import Actor, model_target
from functions.models.errors import Conflict, NotFound
from functions.models.registry import TRANSITIONS
from functions.models.registry import VersionStatus as S
from functions.models.settings import get_settings
from tests.integration.conftest import Stores
from tests.integration.release_support import register

OPS = Actor(identity="ops", correlation_id="hypothesis")
_models = itertools.count()
EXPECTED = (Conflict, NotFound)  # IllegalTransition is a Conflict


class ReleaseMachine(RuleBasedStateMachine):
    stores: Stores

    def __init__(self) -> None:
        super().__init__()
        self.model = f"m-{next(_models)}"  # a fresh model per sequence; the tables are shared
        self.settings = get_settings()
        self.count = 0
        self.changes = 0  # successful operations

    def _try(self, op: object) -> None:
        try:
            op()  # type: ignore[operator]
        except EXPECTED:
            return
        self.changes += 1

    def _version(self, data: st.DataObject) -> int:
        return data.draw(st.integers(min_value=1, max_value=max(self.count, 1)))

    @rule()
    def register(self) -> None:
        register(self.stores, self.model)
        self.count += 1

    @rule(data=st.data())
    def approve(self, data: st.DataObject) -> None:
        n = self._version(data)
        self._try(lambda: releases.approve(self.settings, self.model, n, OPS, "ok"))

    @rule(data=st.data())
    def reject(self, data: st.DataObject) -> None:
        n = self._version(data)
        self._try(lambda: releases.reject(self.settings, self.model, n, OPS, "no"))

    @rule(data=st.data())
    def promote(self, data: st.DataObject) -> None:
        n = self._version(data)
        self._try(lambda: releases.promote(self.settings, self.model, n, OPS, "all at once"))

    @rule(data=st.data(), weight=st.sampled_from([0.1, 0.5]))
    def start_canary(self, data: st.DataObject, weight: float) -> None:
        n = self._version(data)
        self._try(lambda: releases.start_canary(self.settings, self.model, n, weight, OPS, "canary"))

    @rule(data=st.data(), named=st.booleans(), fresh=st.booleans())
    def rollback(self, data: st.DataObject, named: bool, fresh: bool) -> None:
        to = self._version(data) if named else None
        if fresh and self.count:  # what serves now, as the CLI reads it; else a guess, often stale
            record = releases.read_state(self.settings, self.model).record
            production, canary = record.production_version, record.candidate_version
        else:
            production, canary = self._version(data), data.draw(st.none() | st.just(self._version(data)))
        self._try(
            lambda: releases.rollback(
                self.settings,
                self.model,
                OPS,
                "revert",
                expected_production=production,
                expected_canary=canary,
                to_version=to,
            )
        )

    @rule(data=st.data())
    def retire(self, data: st.DataObject) -> None:
        n = self._version(data)
        self._try(lambda: releases.retire(self.settings, self.model, n, OPS, "old"))

    @invariant()
    def registry_invariants_hold(self) -> None:
        """At most one production (and one canary), the aliases agree with the statuses, every
        change has its audit event, and replaying the audit trail meets no illegal transition."""
        if self.count == 0:
            return
        state = releases.read_state(self.settings, self.model)
        production = [n for n, v in state.versions.items() if v.status == S.PRODUCTION]
        canary = [n for n, v in state.versions.items() if v.status == S.CANARY]
        assert len(production) <= 1, production
        assert production == ([state.record.production_version] if state.record.production_version else [])
        assert canary == ([state.record.candidate_version] if state.record.candidate_version else [])

        replayed: dict[int, S] = {}
        events = audit.list_events(self.settings.metadata_table, target=model_target(self.model))
        for e in events:
            if e.version is None:
                continue
            after = S(e.after["status"])  # type: ignore[index]
            if e.action == "version.register":
                replayed[e.version] = after
                continue
            before = S(e.before["status"])  # type: ignore[index]
            assert replayed[e.version] == before, (e.action, e.version)
            assert after in TRANSITIONS[before], f"illegal {before} -> {after}"
            replayed[e.version] = after
        assert replayed == {n: v.status for n, v in state.versions.items()}
        alias_moves = sum(1 for e in events if e.action == "model.aliases")
        assert alias_moves == state.record.revision


def run(stores: Stores, examples: int) -> None:
    ReleaseMachine.stores = stores
    run_state_machine_as_test(
        ReleaseMachine,
        settings=settings(
            max_examples=examples,
            stateful_step_count=12,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        ),
    )


def test_release_random_sequences_keep_registry_invariants(stores: Stores) -> None:
    # Given / When 25 random sequences (every run); Then the invariants hold after every step
    run(stores, 25)


@pytest.mark.full
def test_release_200_random_sequences_keep_registry_invariants(stores: Stores) -> None:
    # 200 random sequences, the deep run (5 to 10 minutes on moto; run with --full)
    run(stores, 200)
