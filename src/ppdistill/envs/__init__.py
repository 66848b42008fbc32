"""Environments: one factory for the library, the CLI, the benchmarks and the tests
(:mod:`ppdistill.envs.make`), with a module per backend that is not gymnasium's own."""

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
