"""A job spec as the client takes it (a dict, a TOML or JSON file, or the
text of one) turned into what SubmitJob carries: the text and its format."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Union

Spec = Union[Mapping[str, Any], str, os.PathLike]
_SUFFIXES = {".toml": "toml", ".json": "json"}


def spec_text(spec: Spec) -> tuple[str, str]:
    """(text, format): a mapping as JSON; a path (a Path, or a one-line
    string not starting with '{' that names a .toml or .json file, or any
    existing file) read, its format from its suffix or its first character;
    other strings are the spec's text (JSON if it starts with '{', else
    TOML)."""
    if isinstance(spec, Mapping):
        return json.dumps(spec), "json"
    if isinstance(spec, os.PathLike) or _looks_like_a_path(spec):
        path = Path(spec)
        if not path.is_file():
            raise FileNotFoundError(f"no job spec file at {path}")
        text = path.read_text()
        return text, _SUFFIXES.get(path.suffix.lower()) or _sniff(text)
    if isinstance(spec, str):
        return spec, _sniff(spec)
    raise TypeError(f"a job spec is a dict, a path or the text of a TOML or JSON spec, not {type(spec).__name__}")


def _looks_like_a_path(spec: Any) -> bool:
    if not isinstance(spec, str) or "\n" in spec or not spec.strip() or spec.lstrip().startswith("{"):
        return False
    try:
        return Path(spec).suffix.lower() in _SUFFIXES or Path(spec).is_file()
    except OSError:  # a name too long to be a file's
        return False


def _sniff(text: str) -> str:
    return "json" if text.lstrip().startswith("{") else "toml"
