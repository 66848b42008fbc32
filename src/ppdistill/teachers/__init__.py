"""Frozen teachers: the :class:`Teacher` interface, one module per teacher kind, and
:func:`load_teacher`, which builds one from a file (an SB3 zip or an rl-zoo folder) or a callable."""

from ppdistill.teachers.actor_critic import ActorCriticTeacher
from ppdistill.teachers.base import Teacher, TeacherOutput
from ppdistill.teachers.callable import CallableTeacher
from ppdistill.teachers.loading import load_agent, load_teacher
from ppdistill.teachers.offpolicy import DeterministicTeacher, SquashedGaussianTeacher
from ppdistill.teachers.q_values import DEFAULT_Q_TEMPERATURE, QValueTeacher

__all__ = [
    "DEFAULT_Q_TEMPERATURE",
    "ActorCriticTeacher",
    "CallableTeacher",
    "DeterministicTeacher",
    "QValueTeacher",
    "SquashedGaussianTeacher",
    "Teacher",
    "TeacherOutput",
    "load_agent",
    "load_teacher",
]
