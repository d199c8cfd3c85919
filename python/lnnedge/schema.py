"""Typed schemas for the kit's YAML files (recipes, boards.yaml, targets, toolchains), on pydantic.

A file is described by a `FileModel` whose fields carry their type and range: integers are integers (not
`true`, not `'5'`), numbers are finite, names are safe to put in a path. An unknown key is refused with a
did-you-mean. `check()` turns pydantic's report into one line naming the file, the key and the value, raised
as the caller's error class (ConfigError, RecipeError). The models describe the files as written; config.py
and recipe.py turn them into the frozen dataclasses the rest of the kit uses, and `invoke schema` writes
their JSON Schema for editors.
"""

from __future__ import annotations

import difflib
import math
import re
import types
import typing
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from .errors import LnnedgeError
from .expr import number


class FileModel(BaseModel):
    """A mapping in one of the kit's files: unknown keys refused (with a did-you-mean), values immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, raw: Any) -> Any:
        if isinstance(raw, dict):
            for key in raw:
                if key not in cls.model_fields:
                    raise PydanticCustomError("unknown_key", "{hint}", {"key": key, "hint": cls._hint(key)})
        return raw

    @classmethod
    def _hint(cls, key: object) -> str:
        """'did you mean steps?' for a misspelt key; 'it belongs under training' for a key one level too high."""
        known = list(cls.model_fields)
        close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
        if close:
            return f"unknown key (did you mean '{close[0]}'?)"
        for name, info in cls.model_fields.items():
            for inner in _models(info.annotation):
                if key in inner.model_fields:
                    return f"unknown key here (did you mean '{name}.{key}'?)"
        return f"unknown key (known: {', '.join(known)})"


def _models(annotation: Any) -> list[type[FileModel]]:
    """The FileModel classes inside a field's annotation (X, X | None, Annotated[X, ...])."""
    if isinstance(annotation, type) and issubclass(annotation, FileModel):
        return [annotation]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, Annotated):
        return [m for arg in typing.get_args(annotation) for m in _models(arg)]
    return []


def _finite(value: Any) -> float:
    """A number, or an expression of numbers ("2*pi"), evaluated in float64; never NaN or infinite."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise PydanticCustomError("number", "must be a number, got {value}", {"value": repr(value)})
    try:
        result = number(value)
    except (ValueError, TypeError, OverflowError) as exc:
        raise PydanticCustomError("number", "must be a number, got {value} ({why})",
                                  {"value": repr(value), "why": str(exc)}) from None
    if not math.isfinite(result):
        raise PydanticCustomError("number", "must be a finite number, got {value}", {"value": repr(value)})
    return result


def Real(**bounds: float) -> Any:  # noqa: N802 (a type factory, used like a type)
    """A finite float (YAML number or expression) with bounds: gt, ge, lt, le."""
    return Annotated[float, BeforeValidator(_finite, json_schema_input_type=float | str), Field(**bounds)]


def Int(**bounds: int) -> Any:  # noqa: N802
    """An integer (not a bool, not a float, not a string) with bounds: ge, le."""
    return Annotated[int, Field(strict=True, **bounds)]


def Seconds(most: float = 86400.0) -> Any:  # noqa: N802
    """A positive, finite number of seconds; more than `most` (a day by default) is taken for a typo."""
    return Annotated[float, Field(strict=True, gt=0, le=most, allow_inf_nan=False)]


Text = Annotated[str, Field(strict=True, min_length=1)]
Flag = Annotated[bool, Field(strict=True)]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def safe_name(value: str) -> str:
    """A name that becomes a path component (build/<recipe>/, verify-<board>.json): no '/', no leading '.'."""
    if not _NAME.fullmatch(value):
        raise PydanticCustomError("name", "must be a name of letters, digits, '.', '_' and '-' that does not start "
                                  "with '.' or '-', got {value}", {"value": repr(value)})
    return value


Name = Annotated[str, Field(strict=True), AfterValidator(safe_name)]

_UNITS = {"": 1, "B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "KB": 1000, "MB": 1000**2, "GB": 1000**3}
_MOST_BYTES = 1 << 50  # 1 PiB: a memory size above it is a typo


def _bytes(value: Any) -> int:
    """A size as a positive integer or a string like '256KiB' / '1GiB'."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMG]i?B|B)?\s*", value) if isinstance(value, str) else None
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    elif match:
        size = int(float(match.group(1)) * _UNITS[match.group(2) or ""])
    else:
        raise PydanticCustomError("size", "{value} is not a size (e.g. 262144, '256KiB', '1GiB')",
                                  {"value": repr(value)})
    if not 0 < size <= _MOST_BYTES:
        raise PydanticCustomError("size", "must be between 1 byte and 1 PiB, got {value}", {"value": repr(value)})
    return size


Size = Annotated[int, BeforeValidator(_bytes, json_schema_input_type=int | str)]


def _where(loc: tuple) -> str:
    """('data', 'range', 0) -> 'data.range[0]'; a mapping's key itself (pydantic's '[key]') -> ' (the key)'."""
    text = ""
    for part in loc:
        if part == "[key]":
            text += " (the key)"
        else:
            text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


_PHRASES = {
    "missing": "is missing",
    "int_type": "must be an integer", "int_parsing": "must be an integer", "int_from_float": "must be an integer",
    "float_type": "must be a number", "float_parsing": "must be a number", "finite_number": "must be a finite number",
    "string_type": "must be a string", "string_too_short": "must not be empty",
    "bool_type": "must be true or false", "bool_parsing": "must be true or false",
    "dict_type": "must be a mapping of keys", "model_type": "must be a mapping of keys",
    "model_attributes_type": "must be a mapping of keys",
    "list_type": "must be a list", "tuple_type": "must be a list",
    "too_short": "must have at least {min_length} item(s)", "too_long": "must have at most {max_length} item(s)",
    "greater_than": "must be > {gt}", "greater_than_equal": "must be >= {ge}",
    "less_than": "must be < {lt}", "less_than_equal": "must be <= {le}",
    "literal_error": "must be one of {expected}", "extra_forbidden": "unknown key",
}


def _problem(err: dict) -> tuple[tuple, str]:
    """The location and the phrase for one pydantic error, the value appended where it helps."""
    kind, loc, ctx = err["type"], tuple(err["loc"]), err.get("ctx") or {}
    if kind == "unknown_key":
        return (*loc, ctx["key"]), ctx["hint"]
    if kind in ("number", "name", "size", "value_error", "rule"):  # our own messages already carry the value
        return loc, err["msg"].removeprefix("Value error, ")
    if kind == "missing":
        return loc, "is missing"
    phrase = _PHRASES.get(kind)
    text = phrase.format(**ctx) if phrase else err["msg"]
    return loc, f"{text}, got {err['input']!r}"


M = TypeVar("M", bound=BaseModel)


def check(model: type[M], raw: Any, path: Path, error: type[LnnedgeError], within: tuple = ()) -> M:
    """`raw` (from YAML) validated as `model`; the first problem as `error("<path>: <key>: <problem>")`."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = exc.errors(include_url=False)
        loc, text = _problem(problems[0])
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        raise error(f"{path}: {_where((*within, *loc)) or '<top level>'}: {text}{more}") from None


def rule(message: str) -> PydanticCustomError:
    """A cross-field rule's failure, raised from a model validator (its message names the keys)."""
    return PydanticCustomError("rule", "{message}", {"message": message})
