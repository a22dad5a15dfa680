"""The base of every API model. Its schema is built on first use rather than when the class is
defined, so a cold start does not pay for the models of routes it never serves."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Model(BaseModel):
    model_config = ConfigDict(defer_build=True)
