"""The app's stack templates read as one (tests/infra/conftest.py and the fingerprint): the
reader the local cloud's strict-auth gateway uses too (layers/assembly.py)."""

from __future__ import annotations

from layers.assembly import merged_template

__all__ = ["merged_template"]
