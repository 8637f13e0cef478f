"""What the demo's stages share: the failure that stops the demo, and the names of the spec, the
model, the data producer and the operator every stage works with. The step modules (demo_data, demo_lifecycle,
demo_release, demo_drift, demo_governance) import this module, and stepwise.demo imports them."""

from __future__ import annotations

SPEC_NAME = "wine"
MODEL = "wine-model"
OPERATOR = "demo-operator"  # the named identity that approves releases in the demo
PRODUCER = "demo-producer"  # the named identity that uploads the data (and so starts the training run)


class DemoFailure(Exception):
    """A demo step saw something other than what the system should do; the demo exits non-zero."""
