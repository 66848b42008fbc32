"""Optional dependencies, imported when a feature needs them."""

from __future__ import annotations

import importlib
from typing import Any

from ppdistill.core.errors import MissingExtraError


def require_extra(module: str, extra: str, what: str, hint: str | None = None) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(extra, what, module, hint) from exc
