"""JSON objects from the network: parsed, and refused with the error of who sent them."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any


def json_object(data: bytes, error: Callable[[str], Exception], sender: str) -> dict[str, Any]:
    """The JSON object `data` holds; `error` (naming `sender`) when it holds none."""
    try:
        document = json.loads(data)
    except ValueError as problem:
        raise error(f"{sender}'s answer is not JSON: {problem}") from None
    if not isinstance(document, dict):
        raise error(f"{sender}'s answer is not a JSON object")
    return document
