"""Periodic evaluation of the student during a run (an SB3 callback)."""

from __future__ import annotations

import time
from typing import Any

from stable_baselines3.common.callbacks import BaseCallback

from ppdistill.envs.recipe import EnvRecipe
from ppdistill.evaluation import evaluate


class PeriodicEvaluation(BaseCallback):
    """Evaluates the student every ``freq`` env steps (and at step 0) on seeded episodes.

    :param env: environment to evaluate on (an id, or a recipe with wrappers and the student's view)
    :param freq: env steps between evaluations
    :param n_episodes: episodes per evaluation
    :param deterministic: act with the mode
    :param seed: seed of the evaluation resets (the same at every evaluation)
    """

    def __init__(
        self, env: str | EnvRecipe, freq: int, n_episodes: int, deterministic: bool, seed: int
    ) -> None:
        super().__init__()
        self.env, self.freq, self.n_episodes = env, freq, n_episodes
        self.deterministic, self.seed = deterministic, seed
        self.rows: list[dict[str, float]] = []
        self._next = 0
        self._start = time.perf_counter()
        self._resumed = False

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps: the rows, the next evaluation step, the elapsed time."""
        return {"rows": list(self.rows), "next": self._next, "elapsed": time.perf_counter() - self._start}

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state` (no evaluation at the start of the resumed training)."""
        self.rows = list(state["rows"])
        self._next = int(state["next"])
        self._elapsed_before = float(state["elapsed"])
        self._resumed = True

    def carry_on(self) -> None:
        """The next ``learn`` continues this curve (a pipeline's next phase): no evaluation at
        its start, wall time counted on."""
        self.restore(self.state())

    def evaluate_now(self) -> None:
        """Evaluate the model as it is now and add a row (also used at a phase boundary)."""
        result = evaluate(self.model, self.env, self.n_episodes, self.deterministic, seed=self.seed)
        self.rows.append(
            {
                "timesteps": int(self.model.num_timesteps),
                "wall_time_s": round(time.perf_counter() - self._start, 3),
                "mean": result.mean,
                "std": result.std,
            }
        )
        self.logger.record("eval/mean_reward", result.mean)
        self._next = self.model.num_timesteps + self.freq

    def _on_training_start(self) -> None:
        if self._resumed:
            self._start = time.perf_counter() - self._elapsed_before
            return
        self._start = time.perf_counter()
        self.evaluate_now()

    def _on_step(self) -> bool:
        if self.num_timesteps >= self._next:
            self.evaluate_now()
        return True
