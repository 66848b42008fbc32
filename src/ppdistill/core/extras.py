"""Optional dependencies, imported when a feature needs them."""

from __future__ import annotations

import importlib
from typing import Any

from ppdistill.core.errors import MissingExtraError


def require_extra(module: str, extra: str, what: str, hint: str | None = None) -> Any:
    """Import ``module``, or raise :class:`MissingExtraError` naming the extra that installs it.

    :param module: the module to import (``"ale_py"``, ``"rliable.library"``)
    :param extra: the extra of ppdistill that installs it (``"atari"``)
    :param what: the feature that needs it, for the message (``"environment PongNoFrameskip-v4"``)
    :param hint: the install command, when it is not ``pip install 'ppdistill[<extra>]'``
    :return: the module
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(extra, what, module, hint) from exc
