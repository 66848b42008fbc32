"""How a loaded teacher will be read: what ``ppdistill teacher inspect`` shows."""

from __future__ import annotations

from typing import Any

from ppdistill.teachers.base import Teacher
from ppdistill.teachers.loading import KINDS, TARGET_KEYWORDS


def describe_teacher(teacher: Teacher) -> dict[str, Any]:
    """What was found in a teacher: its kind and how its distillation target is formed, its
    spaces, the environment it acts in (wrappers, frame stack), its observation normalization
    and its network.

    :param teacher: a loaded teacher (:func:`~ppdistill.load_teacher`)
    :return: plain data, one entry per aspect
    """
    info = teacher.info
    kind = info.get("kind", type(teacher).__name__)
    declared = next((k for k in KINDS if k.name == kind), None)
    normalizer = teacher.obs_normalizer
    normalization = "none"
    if normalizer is not None:
        source = info.get("vecnormalize") or "its VecNormalize statistics"
        normalization = f"frozen VecNormalize statistics from {source}"
    recipe = teacher.env_recipe
    parameters = sum(p.numel() for p in teacher.parameters())
    described: dict[str, Any] = {
        "path": info.get("path"),
        "kind": kind,
        "policy": info.get("algo_policy", type(teacher).__name__),
        "target": declared.target if declared is not None and declared.target else "-",
        "observation_space": str(teacher.observation_space),
        "action_space": str(teacher.action_space),
        "environment": recipe.describe() if recipe is not None else info.get("env_id") or "-",
        "normalization": normalization,
        "hidden_layers": teacher.hidden_layers,
        "parameters": int(parameters),
        "values": "yes" if teacher.has_value else "no",
    }
    for key in (*TARGET_KEYWORDS, "output"):
        if key in info:
            described[key] = info[key]
    return described
