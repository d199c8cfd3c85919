"""Command-line values checked before any work starts: a bad one is a UsageError naming the flag and the value.

Invoke hands every option over as a string (or the default); tasks.py passes them through these.
"""

from __future__ import annotations

import math

from .errors import UsageError


def count(value: object, flag: str, minimum: int = 1, maximum: int | None = None) -> int:
    """An integer option such as --epochs, --steps, --row, within [minimum, maximum]."""
    try:
        number = int(str(value).strip())
    except ValueError:
        raise UsageError(f"{flag} must be an integer, got {value!r}") from None
    if number < minimum or (maximum is not None and number > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise UsageError(f"{flag} must be {bound}, got {number}")
    return number


def optional_count(value: object, flag: str, minimum: int = 1) -> int | None:
    return None if value is None else count(value, flag, minimum)


def counts(value: str, flag: str, minimum: int = 0) -> list[int]:
    """A comma-separated list of integers (--seeds 0,1,2); empty items refused."""
    return [count(item, flag, minimum) for item in _items(value, flag)]


def numbers(value: str, flag: str) -> list[float]:
    """Comma-separated finite numbers (--inputs 0.5,1.2); an empty item, NaN or infinity is refused."""
    result = []
    for item in _items(value, flag):
        try:
            number = float(item)
        except ValueError:
            raise UsageError(f"{flag} must be comma-separated numbers, got {item!r} in {value!r}") from None
        if not math.isfinite(number):
            raise UsageError(f"{flag} must be finite numbers, got {item!r} in {value!r}")
        result.append(number)
    return result


def _items(value: str, flag: str) -> list[str]:
    items = [item.strip() for item in str(value).split(",")]
    if not all(items):
        raise UsageError(f"{flag} has an empty item in {value!r} (write e.g. 0.5,1.2)")
    return items


def positive_number(value: object, flag: str) -> float:
    """One finite number above 0 (--tolerance 1e-5)."""
    found = numbers(str(value), flag)
    if len(found) != 1 or found[0] <= 0:
        raise UsageError(f"{flag} must be one number above 0, got {value!r}")
    return found[0]
