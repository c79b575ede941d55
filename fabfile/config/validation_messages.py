"""pydantic's validation errors, told as `KEY.PATH: found X; expected Y` lines in the inventory's own words."""

from __future__ import annotations

import difflib
import types
import typing
from typing import Annotated, Any

from pydantic import BaseModel, ValidationError

from .inventory import Inventory


def describe_validation_errors(error: ValidationError, raw: Any) -> list[str]:
    """Turn pydantic's errors into `KEY.PATH: found X; expected Y` lines."""
    lines = []
    for item in error.errors(include_url=False):
        location = item["loc"]
        path = format_key_path(location)
        kind = item["type"]
        if kind == "missing":
            lines.append(f"{path}: missing; expected {_describe_expected(location)}")
        elif kind == "extra_forbidden":
            allowed = allowed_keys(location[:-1])
            hint = difflib.get_close_matches(str(location[-1]), allowed, n=1)
            suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
            lines.append(f"{path}: unknown key{suggestion}; expected one of: {', '.join(allowed)}")
        else:
            expected = _phrase_expectation(item["msg"])
            prefix = f"{path}: " if path else ""
            if isinstance(item["input"], dict) and kind == "value_error":
                lines.append(f"{prefix}{expected}")
            else:
                lines.append(f"{prefix}found {_show(item['input'])}; {expected}")
    return lines


def format_key_path(location: tuple[int | str, ...]) -> str:
    text = ""
    for part in location:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def allowed_keys(location: tuple[int | str, ...]) -> list[str]:
    model = _model_at(location)
    return sorted(model.model_fields) if model else []


def _model_at(location: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model class that validates the mapping at this key path, if any."""
    annotation: Any = Inventory
    for part in location:
        annotation = _unwrap(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(str(part))
            if field is None:
                return None
            annotation = field.annotation
        elif typing.get_origin(annotation) in (dict, list):
            annotation = typing.get_args(annotation)[-1]
        else:
            return None
    annotation = _unwrap(annotation)
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    """Strip Optional[...] and Annotated[...] down to the type that validates."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
            annotation = members[0]
        else:
            return annotation


def _describe_expected(location: tuple[int | str, ...]) -> str:
    model = _model_at(location)
    if model:
        required = [name for name, field in model.model_fields.items() if field.is_required()]
        return f"a mapping with {', '.join(required)}" if required else "a mapping"
    parent = _model_at(location[:-1])
    field = parent.model_fields.get(str(location[-1])) if parent else None
    if field is not None and field.description:
        return field.description
    return "a value"


_PYDANTIC_PHRASES = (
    ("Input should be ", "expected "),
    ("Value error, ", ""),
    ("List should have at least ", "expected at least "),
    ("Dictionary should have at least ", "expected at least "),
)


def _phrase_expectation(message: str) -> str:
    for prefix, replacement in _PYDANTIC_PHRASES:
        if message.startswith(prefix):
            message = replacement + message[len(prefix):]
            break
    if not message.startswith("expected"):
        message = "expected " + message[0].lower() + message[1:]
    return message


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
