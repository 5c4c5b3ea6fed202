"""Options of models and datasets: one declaration per option (its default
and a parser that checks and normalises a value), and one function that
checks what a user gave against them.

    OPTIONS = {"hidden": Option((128, 64), int_tuple(minimum=1))}
    resolve_options("model 'mlp'", OPTIONS, {"hidden": [32]}, ConfigError)
        -> {"hidden": (32,)}

Values arrive from TOML, JSON or Python, so lists stand for tuples; parsed
values are canonical (tuples of ints, floats), so two specs that mean the
same compare equal and hash the same in a fingerprint.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from spirtd.errors import ConfigError

__all__ = [
    "Option",
    "choice",
    "flag",
    "fraction",
    "int_tuple",
    "integer",
    "number",
    "resolve_options",
    "user_options",
]

Parser = Callable[[Any], Any]


@dataclass(frozen=True)
class Option:
    """One option: its default (already canonical) and the parser that turns
    a given value into the canonical form or raises ConfigError saying what
    it must be."""

    default: Any
    parse: Parser
    doc: str = ""


def resolve_options(
    owner: str,
    known: Mapping[str, Option],
    given: Mapping[str, Any],
    error: type[ConfigError] = ConfigError,
) -> dict[str, Any]:
    """Every option of `known`, from `given` or its default. An unknown
    option, or a value its parser refuses, raises `error` naming owner,
    option and (for unknown ones) the options there are. None counts as not
    given."""
    if not isinstance(given, Mapping):
        raise error(f"{owner}: options must be a mapping, got {given!r}")
    unknown = sorted(str(k) for k in given if k not in known)
    if unknown:
        there = ", ".join(known) if known else "none"
        raise error(f"{owner} has no option {', '.join(map(repr, unknown))}; its options: {there}")
    out = {}
    for name, option in known.items():
        value = given.get(name)
        if value is None:
            out[name] = option.default
            continue
        try:
            out[name] = option.parse(value)
        except ConfigError as exc:
            raise error(f"{owner}: option {name!r} {exc}") from None
    return out


def user_options(
    owner: str,
    known: Mapping[str, Option],
    given: Mapping[str, Any],
    error: type[ConfigError] = ConfigError,
) -> dict[str, Any]:
    """Only the options the user gave, checked and canonical (what a spec
    keeps, so that it can be written out again as the user wrote it)."""
    resolved = resolve_options(owner, known, given, error)
    return {name: resolved[name] for name in known if given.get(name) is not None}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def integer(minimum: int | None = None, maximum: int | None = None) -> Parser:
    """An int in [minimum, maximum]."""

    def parse(value: Any) -> int:
        if not _is_int(value):
            raise ConfigError(f"must be an integer, got {value!r}")
        if minimum is not None and value < minimum:
            raise ConfigError(f"must be >= {minimum}, got {value!r}")
        if maximum is not None and value > maximum:
            raise ConfigError(f"must be <= {maximum}, got {value!r}")
        return int(value)

    return parse


def number(minimum: float | None = None, *, strict: bool = False, maximum: float | None = None) -> Parser:
    """A finite float, at least minimum (above it, when strict), at most maximum."""

    def parse(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"must be finite, got {value!r}")
        if minimum is not None and (value < minimum or (strict and value == minimum)):
            raise ConfigError(f"must be {'>' if strict else '>='} {minimum}, got {value!r}")
        if maximum is not None and value > maximum:
            raise ConfigError(f"must be <= {maximum}, got {value!r}")
        return float(value)

    return parse


def fraction(value: Any) -> float:
    """A float in [0, 1)."""
    parsed = number(0.0)(value)
    if parsed >= 1.0:
        raise ConfigError(f"must be in [0, 1), got {value!r}")
    return parsed


def int_tuple(minimum: int = 1, *, maximum: int | None = None, min_len: int = 0, max_len: int | None = None) -> Parser:
    """A list or tuple of ints, each in [minimum, maximum], of length in
    [min_len, max_len]; returned as a tuple."""

    def parse(value: Any) -> tuple[int, ...]:
        if not isinstance(value, (list, tuple)) or not all(_is_int(v) for v in value):
            raise ConfigError(f"must be a list of integers, got {value!r}")
        if any(v < minimum for v in value):
            raise ConfigError(f"must hold integers >= {minimum}, got {list(value)!r}")
        if maximum is not None and any(v > maximum for v in value):
            raise ConfigError(f"must hold integers <= {maximum}, got {list(value)!r}")
        if len(value) < min_len or (max_len is not None and len(value) > max_len):
            wanted = f"{min_len}" if max_len == min_len else f"{min_len} to {max_len or 'any'}"
            raise ConfigError(f"must hold {wanted} integers, got {list(value)!r}")
        return tuple(int(v) for v in value)

    return parse


def choice(*values: str) -> Parser:
    """One of the given strings."""

    def parse(value: Any) -> str:
        if value not in values or not isinstance(value, str):
            raise ConfigError(f"must be one of {', '.join(values)}; got {value!r}")
        return value

    return parse


def flag(value: Any) -> bool:
    """True or False."""
    if not isinstance(value, bool):
        raise ConfigError(f"must be true or false, got {value!r}")
    return value
