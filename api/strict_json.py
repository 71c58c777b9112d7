"""JSON from clients, read strictly: UTF-8 only, no NaN/Infinity (nor numbers that overflow to them), integers
of at most MAX_INT_DIGITS digits, at most MAX_DEPTH levels of nesting. Anything else is a ValueError whose
message says what was wrong (the caller answers 422)."""

from __future__ import annotations

import json
import math
from typing import Any

MAX_INT_DIGITS = 32  # far beyond any option (seed < 2**31) or sane metadata value
MAX_DEPTH = 32  # objects/arrays inside each other


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number; send finite numbers only")


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"an integer of {len(text)} digits; at most {MAX_INT_DIGITS} are accepted")
    return int(text)


def _float(text: str) -> float:
    value = float(text[:400]) if len(text) <= 400 else math.inf
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]}{'...' if len(text) > 40 else ''} is out of range")
    return value


def depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value (a scalar: 0), computed without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level + 1)
            stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def loads(raw: bytes | str) -> Any:
    """The parsed value, or ValueError (json.JSONDecodeError is one) with the reason."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"not UTF-8 text (byte {e.start})") from None
    try:
        value = json.loads(raw, parse_constant=_constant, parse_int=_integer, parse_float=_float)
    except RecursionError:
        raise ValueError(f"nested more than {MAX_DEPTH} levels deep") from None
    if depth(value) > MAX_DEPTH:
        raise ValueError(f"nested more than {MAX_DEPTH} levels deep")
    return value
