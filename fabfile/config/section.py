"""What every inventory model is built on, and how a model validator reports problems at their own keys."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError


# (key path below the model, the value found there, what was expected)
Problem = tuple[tuple[str | int, ...], Any, str]


def refuse(model: str, problems: list[Problem]) -> None:
    """Raise every problem a model validator found, each at its own key (a ValueError would name only the model)."""
    if problems:
        raise ValidationError.from_exception_data(model, [
            InitErrorDetails(type=PydanticCustomError("refused", "{expected}", {"expected": expected}), loc=loc, input=found)
            for loc, found, expected in problems])


def repeated_indexes(values: list) -> list[int]:
    """The index of every value that an earlier one already had."""
    return [index for index, value in enumerate(values) if value in values[:index]]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)
