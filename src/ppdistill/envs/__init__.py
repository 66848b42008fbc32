"""Environments: one factory for the library, the CLI, the benchmarks and the tests
(:mod:`ppdistill.envs.make`), with a module per backend that is not gymnasium's own, the
teacher's and the student's views of one observation (:mod:`ppdistill.envs.views`), and the
tasks ppdistill registers (``ppdistill/CueMemory-v0``, :mod:`ppdistill.envs.memory`)."""

from ppdistill.envs import memory
from ppdistill.envs.ids import LEGACY_ENV_IDS, UnknownEnvError, canonical_env_id, env_family
from ppdistill.envs.make import env_spaces, make_env, make_vec_env, policy_observation_space

__all__ = [
    "LEGACY_ENV_IDS",
    "UnknownEnvError",
    "canonical_env_id",
    "env_family",
    "env_spaces",
    "make_env",
    "make_vec_env",
    "policy_observation_space",
]

memory.register()
