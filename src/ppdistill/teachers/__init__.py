"""Frozen teachers: the :class:`Teacher` interface, one module per teacher kind, and
:func:`load_teacher`, which builds one from a file (an SB3 zip, an rl-zoo folder, an ONNX or
TorchScript file), a model in the local Hugging Face Hub cache (``hf://ORG/NAME``) or a callable."""

from ppdistill.teachers.actor_critic import ActorCriticTeacher
from ppdistill.teachers.base import Teacher, TeacherOutput
from ppdistill.teachers.callable import CallableTeacher
from ppdistill.teachers.external import OUTPUT_KINDS, ExternalTeacher, load_external
from ppdistill.teachers.loading import load_agent, load_teacher
from ppdistill.teachers.offpolicy import DeterministicTeacher, SquashedGaussianTeacher
from ppdistill.teachers.q_values import DEFAULT_Q_TEMPERATURE, QValueTeacher

__all__ = [
    "DEFAULT_Q_TEMPERATURE",
    "OUTPUT_KINDS",
    "ActorCriticTeacher",
    "CallableTeacher",
    "DeterministicTeacher",
    "ExternalTeacher",
    "QValueTeacher",
    "SquashedGaussianTeacher",
    "Teacher",
    "TeacherOutput",
    "load_agent",
    "load_external",
    "load_teacher",
]
