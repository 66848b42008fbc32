"""Velocity-masked control: the student sees the positions of the state only, the teacher all of it.

A teacher trained on the full state (an RL Zoo agent, say) is distilled into a student that
sees only where things are, not how fast they move: a memoryless (MLP) student cannot tell a
velocity from one observation, a recurrent (LSTM) student can infer it from the ones before.
:data:`POSITIONS` lists, per environment, which entries of gymnasium's observation are
positions; :func:`positions_view` gives the student's view of them
(``ppdistill distill --student-obs positions``, a suite's ``student_obs: positions``), and
:func:`positions_change_view` the positions and their change since the step before
(``--student-obs positions-change``): what encoders read over two steps give, without a
velocity sensor, and what a memoryless student can act on.
"""

from __future__ import annotations

from dataclasses import dataclass

from gymnasium import spaces

from ppdistill.core.errors import PPDistillError
from ppdistill.envs.ids import canonical_env_id
from ppdistill.envs.recipe import ADDS_INPUTS, EnvRecipe, RecipeError
from ppdistill.envs.views import EntriesWithChange, ObservationEntries


@dataclass(frozen=True)
class Positions:
    """Which entries of an environment's observation are positions.

    :param size: the observation's number of entries (checked: another layout is refused)
    :param indices: the entries that are positions (or angles, contacts: no velocity)
    :param masked: what the student does not see, in words
    """

    size: int
    indices: tuple[int, ...]
    masked: str


POSITIONS: dict[str, Positions] = {
    # x, ẋ, θ, θ̇
    "CartPole-v1": Positions(4, (0, 2), "the cart's and the pole's velocities"),
    # x, y, vx, vy, angle, angular velocity, left and right leg contact
    "LunarLander-v3": Positions(8, (0, 1, 4, 6, 7), "the linear and angular velocities"),
    "LunarLanderContinuous-v3": Positions(8, (0, 1, 4, 6, 7), "the linear and angular velocities"),
    # cos θ, sin θ, θ̇
    "Pendulum-v1": Positions(3, (0, 1), "the angular velocity"),
    # cos and sin of both joint angles, both angular velocities
    "Acrobot-v1": Positions(6, (0, 1, 2, 3), "the joints' angular velocities"),
    # MuJoCo: qpos without the x coordinate (positions), then qvel (velocities)
    "Hopper-v5": Positions(11, tuple(range(5)), "qvel, every velocity"),
    "HalfCheetah-v5": Positions(17, tuple(range(8)), "qvel, every velocity"),
    "Walker2d-v5": Positions(17, tuple(range(8)), "qvel, every velocity"),
}
"""Environments whose positions :func:`positions_view` knows, by gymnasium id."""


def positions_view(recipe: EnvRecipe) -> ObservationEntries:
    """The student's view of the positions in the observations of ``recipe`` (the teacher's
    environment): the entries of :data:`POSITIONS`, which stay where they are when the recipe
    only appends inputs (a time feature).

    :param recipe: the teacher's recipe
    :raises PPDistillError: for an environment not in :data:`POSITIONS`, or a recipe that changes
        the observation's layout (a frame stack, another wrapper, other ``gym.make`` arguments)
    """
    return ObservationEntries(_position_entries(recipe, "positions"), "positions")


def positions_change_view(recipe: EnvRecipe) -> EntriesWithChange:
    """The student's view of the positions in the observations of ``recipe`` and their change
    since the step before (zero at an episode's first step): twice as many entries as
    :func:`positions_view`, the positions first.

    :param recipe: the teacher's recipe
    :raises PPDistillError: as :func:`positions_view`
    """
    return EntriesWithChange(_position_entries(recipe, "positions-change"), "positions")


def _position_entries(recipe: EnvRecipe, word: str) -> tuple[int, ...]:
    env_id = canonical_env_id(recipe.env_id)
    known = POSITIONS.get(env_id)
    if known is None:
        raise PPDistillError(
            f"--student-obs {word}: ppdistill does not know which entries of {env_id}'s observation "
            f"are positions (it knows {', '.join(POSITIONS)}); give the student a view of your own "
            "from Python (ppdistill.envs.views)"
        )
    others = [w.path for w in recipe.wrappers if w.path not in ADDS_INPUTS]
    if recipe.frame_stack or others:
        what = f"frame_stack {recipe.frame_stack}" if recipe.frame_stack else ", ".join(others)
        raise PPDistillError(
            f"--student-obs {word}: the teacher's environment changes the observation's layout "
            f"({what}); positions are taken from {env_id}'s own observation only"
        )
    try:
        base, _ = EnvRecipe(recipe.env_id, recipe.env_kwargs).spaces()
    except RecipeError as exc:
        raise PPDistillError(f"--student-obs {word}: {exc}") from exc
    if not isinstance(base, spaces.Box) or base.shape != (known.size,):
        raise PPDistillError(
            f"--student-obs {word}: {env_id}'s observation is {base}, not the {known.size} entries "
            "whose positions ppdistill knows (other env_kwargs?)"
        )
    return known.indices
