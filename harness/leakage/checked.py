"""Settings models whose bad values raise ``FtbenchError`` in one line, however they are made."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from ftbench.harness.core.errors import FtbenchError, first_error


class CheckedModel(BaseModel):
    """A frozen pydantic model that refuses unknown keys; a bad or unknown value raises ``FtbenchError`` naming
    the model, the key and the valid range, whether the model is built in code or validated from a mapping."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            spot = first_error(exc)
            if spot.kind == "extra_forbidden":
                valid = ", ".join(type(self).model_fields)
                raise FtbenchError(f"{type(self).__name__}: unknown key {spot.where}; valid keys are {valid}") from exc
            raise FtbenchError(
                f"{type(self).__name__}: {spot.where}: {spot.message}; give a value in its range"
            ) from exc
