"""benchmarks/choose_teachers.py applies teachers-ablation's rule as the suite file writes it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def chooser() -> ModuleType:
    path = ROOT / "benchmarks" / "choose_teachers.py"
    spec = importlib.util.spec_from_file_location("choose_teachers", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


def record(task: str, label: str, final: float, auc: float | None = None) -> dict:
    """A record normalized on a 0..100 scale: its curve is flat at ``auc``."""
    auc = final if auc is None else auc
    return {
        "task": task,
        "label": label,
        "status": "ok",
        "normalized_score": final,
        "reference_score": 100.0,
        "random_score": 0.0,
        "curve": [{"mean": 100.0 * auc}, {"mean": 100.0 * auc}],
    }


HOPPER, LLC = "Hopper-v5 [sac]", "LunarLanderContinuous-v3 [sac]"


def test_a_variant_qualifies_only_when_it_gains_on_average_and_loses_nowhere():
    module = chooser()
    records = [
        record(HOPPER, "ppd", 0.5),
        record(LLC, "ppd", 0.8),
        record(HOPPER, "ppd-norm", 0.7),  # +0.2 and +0.0: qualifies
        record(LLC, "ppd-norm", 0.8),
        record(HOPPER, "ppd-mode", 0.9),  # +0.4 but -0.1 on one entry: does not
        record(LLC, "ppd-mode", 0.7),
        record(HOPPER, "ppd-norm-mode", 0.8, auc=0.1),  # +0.15 final, AUC far lower: does not
        record(LLC, "ppd-norm-mode", 0.8, auc=0.1),
        record(HOPPER, "student-distill", 0.5),
        record(HOPPER, "sd-norm", 0.53),  # +0.03: below the 0.05 gain
        record("MountainCar-v0 [dqn]", "ppd", 0.4),
        record("MountainCar-v0 [dqn]", "ppd-horizon", 0.7),
    ]
    found = {(c.kind, c.variant): c for c in module.comparisons(records)}
    assert found[("sac", "ppd-norm")].qualifies and abs(found[("sac", "ppd-norm")].mean_final - 0.1) < 1e-9
    assert not found[("sac", "ppd-mode")].qualifies
    assert not found[("sac", "ppd-norm-mode")].qualifies
    assert not found[("sac", "sd-norm")].qualifies
    chosen = module.choose(list(found.values()))
    assert chosen[("sac", "ppd")].variant == "ppd-norm"
    assert chosen[("sac", "student-distill")] is None
    assert chosen[("dqn", "ppd")].variant == "ppd-horizon"


def test_of_several_qualifying_variants_the_largest_gain_is_chosen_and_failed_runs_are_left_out():
    module = chooser()
    records = [
        record(HOPPER, "ppd", 0.5),
        record(HOPPER, "ppd-norm", 0.6),
        record(HOPPER, "ppd-mode", 0.8),
        {**record(HOPPER, "ppd-wide", 5.0), "status": "error"},
    ]
    chosen = module.choose(module.comparisons(records))
    assert chosen[("sac", "ppd")].variant == "ppd-mode"
    assert all(c.variant != "ppd-wide" for c in module.comparisons(records))
