"""benchmarks/choose_teachers.py applies teachers-ablation's rule as the suite file writes it."""

from __future__ import annotations

from types import ModuleType

import pytest

from ..helpers import benchmark_script


def chooser() -> ModuleType:
    return benchmark_script("choose_teachers")


def record(task: str, label: str, final: float, auc: float | None = None, seed: int = 0) -> dict:
    """A record normalized on a 0..100 scale: its curve is flat at ``auc``."""
    auc = final if auc is None else auc
    return {
        "task": task,
        "label": label,
        "spec": {"seed": seed},
        "status": "ok",
        "normalized_score": final,
        "reference_score": 100.0,
        "random_score": 0.0,
        "curve": [{"timesteps": 0, "mean": 100.0 * auc}, {"timesteps": 1000, "mean": 100.0 * auc}],
    }


def runs(task: str, label: str, final: float, auc: float | None = None) -> list[dict]:
    """Seeds 0-2, all alike."""
    return [record(task, label, final, auc, seed) for seed in range(3)]


HOPPER, LLC = "Hopper-v5 [sac]", "LunarLanderContinuous-v3 [sac]"


def test_a_variant_qualifies_only_when_it_gains_on_average_and_loses_nowhere():
    module = chooser()
    records = [
        *runs(HOPPER, "ppd", 0.5),
        *runs(LLC, "ppd", 0.8),
        *runs(HOPPER, "ppd-norm", 0.7),  # +0.2 and +0.0: qualifies
        *runs(LLC, "ppd-norm", 0.8),
        *runs(HOPPER, "ppd-mode", 0.9),  # +0.4 but -0.1 on one entry: does not
        *runs(LLC, "ppd-mode", 0.7),
        *runs(HOPPER, "ppd-norm-mode", 0.8, auc=0.1),  # +0.15 final, AUC far lower: does not
        *runs(LLC, "ppd-norm-mode", 0.8, auc=0.1),
        *runs(HOPPER, "student-distill", 0.5),
        *runs(HOPPER, "sd-norm", 0.53),  # +0.03: below the 0.05 gain
        *runs("MountainCar-v0 [dqn]", "ppd", 0.4),
        *runs("MountainCar-v0 [dqn]", "ppd-horizon", 0.7),
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


def test_of_several_qualifying_variants_the_largest_gain_is_chosen():
    module = chooser()
    records = [*runs(HOPPER, "ppd", 0.5), *runs(HOPPER, "ppd-norm", 0.6), *runs(HOPPER, "ppd-mode", 0.8)]
    chosen = module.choose(module.comparisons(records))
    assert chosen[("sac", "ppd")].variant == "ppd-mode"


def test_the_thresholds_are_inclusive_as_the_rule_writes_them():
    module = chooser()
    records = [*runs(HOPPER, "ppd", 0.5, auc=0.5), *runs(HOPPER, "ppd-norm", 0.55, auc=0.48)]
    (c,) = module.comparisons(records)
    assert c.qualifies  # +0.05 final, -0.02 AUC: both at the limit
    records = [*runs(HOPPER, "ppd", 0.5, auc=0.5), *runs(HOPPER, "ppd-norm", 0.549, auc=0.5)]
    assert not module.comparisons(records)[0].qualifies


def test_a_variant_that_failed_on_one_entry_or_seed_is_incomplete_and_not_chosen():
    module = chooser()
    failed = {**record(LLC, "ppd-mode", 5.0, seed=1), "status": "error"}
    records = [
        *runs(HOPPER, "ppd", 0.5),
        *runs(LLC, "ppd", 0.5),
        *runs(HOPPER, "ppd-mode", 0.9),
        record(LLC, "ppd-mode", 0.9, seed=0),
        failed,  # seed 2 never ran
        *runs(HOPPER, "ppd-norm", 0.6),
        *runs(LLC, "ppd-norm", 0.6),
    ]
    found = {c.variant: c for c in module.comparisons(records)}
    assert found["ppd-mode"].missing == (f"{LLC}: ppd-mode seed 1", f"{LLC}: ppd-mode seed 2")
    assert not found["ppd-mode"].qualifies
    assert module.choose(list(found.values()))[("sac", "ppd")].variant == "ppd-norm"


def test_a_group_judges_tqc_entries_with_sacs_and_bad_options_are_refused():
    module = chooser()
    tqc = "Hopper-v5 [tqc-timefeature]"
    records = [
        *runs(HOPPER, "ppd", 0.5),
        *runs(HOPPER, "ppd-w05", 0.7),  # +0.2 on SAC
        *runs(tqc, "ppd", 0.7),
        *runs(tqc, "ppd-w05", 0.6),  # -0.1 on TQC: the group loses an entry by more than 0.05
    ]
    alone = module.choose(module.comparisons(records))
    assert alone[("sac", "ppd")].variant == "ppd-w05" and alone[("tqc", "ppd")] is None
    grouped = module.comparisons(records, module.parse_groups(["--group", "tqc=sac"]))
    (c,) = grouped
    assert c.kind == "sac" and set(c.d_final) == {HOPPER, tqc} and not c.qualifies
    for bad in (["--group"], ["--group", "tqc"], ["--kind", "tqc=sac"]):
        with pytest.raises(SystemExit, match="--group TAG=KIND"):
            module.parse_groups(bad)


def test_main_writes_the_choice_with_its_command_and_refuses_a_group_matching_no_entry(tmp_path):
    import json

    module = chooser()
    folder = tmp_path / "teachers-ablation-width"
    folder.mkdir()
    tqc = "Hopper-v5 [tqc-timefeature]"
    records = [*runs(HOPPER, "ppd", 0.5), *runs(HOPPER, "ppd-w05", 0.7), *runs(tqc, "ppd", 0.5)]
    records += runs(tqc, "ppd-w05", 0.6)
    (folder / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    text = module.main(folder, {"tqc": "sac"})
    assert "- sac, ppd: `ppd-w05`" in text and "| tqc |" not in text
    written = (folder / "choice.md").read_text()
    assert written.startswith("# teachers-ablation-width: the choice")
    assert f"choose_teachers.py {folder} --group tqc=sac`" in written
    with pytest.raises(SystemExit, match="no entry's tag starts with 'tcq'"):
        module.main(folder, {"tcq": "sac"})
