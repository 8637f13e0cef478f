"""What a sync of one model's CloudWatch alarms did (functions/logic/model_alarms.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ModelAlarms(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str
    serving: bool  # whether the model has a production or canary version
    outcome: Literal["created", "updated", "deleted", "none", "off", "failed"]
    alarms: list[str] = Field(default_factory=list, max_length=16)  # the model's alarm names
    error: str = ""


class ViewAlarms(BaseModel):
    """What making one feature view's alarms exist did (functions/logic/view_alarms.py)."""

    model_config = ConfigDict(extra="forbid")

    view: str
    outcome: Literal["created", "updated", "off", "failed"]
    alarms: list[str] = Field(default_factory=list, max_length=16)  # the view's alarm names
    error: str = ""
