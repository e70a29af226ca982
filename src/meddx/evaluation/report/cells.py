"""A metric as report table text: a number, its 95% interval, or why there is none."""

from __future__ import annotations

import math
from typing import Any


def lookup(result: dict[str, Any], key: str) -> float | None:
    """A metric by dotted key (`test_acc`, `per_class.S.sensitivity`); None when absent."""
    if key in result:
        value = result[key]
    else:
        head, _, rest = key.partition(".")
        value = result.get(head)
        for part in rest.split(".") if rest else ():
            value = value.get(part) if isinstance(value, dict) else None
    return float(value) if isinstance(value, int | float) else None


def number(value: float | None, scale: float = 1.0) -> str:
    if value is None:
        return "—"
    if math.isnan(value):
        return "undefined"  # e.g. the PPV of a class the model never predicts
    return f"{value * scale:.1f}" if scale != 1 else f"{value:.4f}"


def with_ci(result: dict[str, Any], key: str, scale: float = 1.0) -> str:
    low, high = lookup(result, f"{key}_ci_low"), lookup(result, f"{key}_ci_high")
    text = number(lookup(result, key), scale)
    return f"{text} [{number(low, scale)}, {number(high, scale)}]" if low is not None else text
