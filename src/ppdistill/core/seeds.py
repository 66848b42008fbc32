"""The seed plan: every seed a run uses derives from the run's seed, here and nowhere else.

=========================  ==============  ====================================================
stream                     seed            what it seeds
=========================  ==============  ====================================================
``training``               seed            the student (torch, numpy, Python RNGs) and its
                                           training environments (``seed + i`` for the i-th)
``periodic_evaluation``    seed + 10 000   the resets of every periodic evaluation: the same
                                           episodes each time, so a curve moves with the policy
``final_evaluation``       seed + 20 000   the resets of the final evaluation, of the student,
                                           the teacher and a random policy alike: the same
                                           episodes for all three, so their difference is paired
``fresh_episodes``         seed + 30 000   new episodes when a resumed run cannot replay its
                                           environments (see :mod:`ppdistill.experiment.checkpoints`)
``finetune``               seed + 40 000   the fine-tuning PPO of a distill-then-fine-tune run
                                           and its fresh training environments
``calibration``            seed + 40 000   with the noise seed of ``teacher corrupt
                                           --target-fraction``: the episodes every candidate
                                           σ is scored on (one stream per calibration)
``validation``             seed + 50 000   the episodes on which a pipeline with
                                           ``finetune_keep_better`` compares the distilled
                                           and the fine-tuned student (never the final ones)
=========================  ==============  ====================================================

The offsets are 10 000 apart so that the streams of runs with nearby seeds (0, 1, 2, ...)
never meet. ``finetune`` and ``calibration`` share an offset but never a process: one seeds
a training run's second phase, the other a teacher tool.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SeedPlan:
    """The seeds of one run (or one teacher tool) with seed ``seed``.

    :param seed: the run's seed (``--seed``)
    """

    seed: int

    @property
    def training(self) -> int:
        return self.seed

    @property
    def periodic_evaluation(self) -> int:
        return self.seed + 10_000

    @property
    def final_evaluation(self) -> int:
        return self.seed + 20_000

    @property
    def fresh_episodes(self) -> int:
        return self.seed + 30_000

    @property
    def finetune(self) -> int:
        return self.seed + 40_000

    @property
    def calibration(self) -> int:
        return self.seed + 40_000

    @property
    def validation(self) -> int:
        return self.seed + 50_000

    def as_dict(self) -> dict[str, int]:
        """Every stream's seed, for results records."""
        names = (
            "training",
            "periodic_evaluation",
            "final_evaluation",
            "fresh_episodes",
            "finetune",
            "validation",
        )
        return {name: int(getattr(self, name)) for name in names}
