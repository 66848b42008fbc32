"""ppdistill's algorithms inside the RL Baselines3 Zoo (extra ``[zoo]``).

::

    python -m ppdistill.integrations.zoo train --algo ppd --env CartPole-v1 -conf hyperparams.yml

registers ``ppd``, ``student_distill`` and ``teacher_distill`` in the zoo's algorithm table
and hands every other argument to the zoo's own ``train`` (logs, evaluation, checkpoints,
``-params`` overrides, Optuna: all the zoo's). The teacher is a hyperparameter, read from
the YAML like any other and passed to the algorithm as ``teacher=PATH``::

    CartPole-v1:
      teacher: rl-trained-agents/ppo/CartPole-v1_1   # a zip or an rl-zoo run folder
      distill_lambda: 1.0
      n_timesteps: 100000
      policy: MlpPolicy
      n_envs: 8
      n_steps: 64
      policy_kwargs: "dict(net_arch=[32, 16])"

The zoo has no default hyperparameters for these algorithms, so ``-conf`` is required.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from stable_baselines3.common.base_class import BaseAlgorithm

from ppdistill.algorithms import PPD, StudentDistill, TeacherDistill
from ppdistill.core.errors import PPDistillError
from ppdistill.core.extras import require_extra

ZOO_ALGOS: dict[str, type[BaseAlgorithm]] = {
    "ppd": PPD,
    "student_distill": StudentDistill,
    "teacher_distill": TeacherDistill,
}
"""Names under which the algorithms are registered in ``rl_zoo3.ALGOS``."""

COMMANDS = ("train",)


def register() -> None:
    """Add ppdistill's algorithms to the zoo's algorithm table.

    ``rl_zoo3.ALGOS`` is one dict that the zoo's scripts import by reference, so adding to
    it makes ``--algo ppd`` valid in ``train`` and its experiment manager.
    """
    rl_zoo3 = require_extra("rl_zoo3", "zoo", "the RL Baselines3 Zoo integration")
    rl_zoo3.ALGOS.update(ZOO_ALGOS)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ppdistill.integrations.zoo train ...``: the zoo's train script with ppdistill's algorithms.

    :param argv: the arguments after the module name (default: ``sys.argv[1:]``)
    :return: exit status
    """
    args = list(sys.argv[1:] if argv is None else argv)
    prog = "python -m ppdistill.integrations.zoo"
    if not args or args[0] not in COMMANDS:
        sys.stderr.write(f"{prog}: error: give a command: {', '.join(COMMANDS)} (then the zoo's arguments)\n")
        return 2
    command, rest = args[0], args[1:]
    uses_ours = any(a in ZOO_ALGOS for a in rest)
    if uses_ours and not any(a in ("-conf", "--conf-file") or a.startswith("--conf-file=") for a in rest):
        sys.stderr.write(
            f"{prog}: error: the zoo has no hyperparameters for ppdistill's algorithms: "
            "pass -conf hyperparams.yml (with the teacher: path in it)\n"
        )
        return 2
    try:
        register()
        from rl_zoo3.train import train

        saved = sys.argv
        sys.argv = [f"{prog} {command}", *rest]  # the zoo's scripts parse sys.argv
        try:
            train()
        finally:
            sys.argv = saved
    except PPDistillError as exc:
        sys.stderr.write(f"ppdistill: error: {exc}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
