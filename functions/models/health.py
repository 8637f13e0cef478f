from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


class StoreHealth(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    kind: Literal["s3", "dynamodb"]
    ok: bool
    detail: str


class HealthReply(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["ok", "degraded"]
    version: str
    stores: list[StoreHealth]
