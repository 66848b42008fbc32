"""ppdistill: Proximal Policy Distillation and classic policy distillation for stable-baselines3."""

import sys

from ppdistill import algorithms, core
from ppdistill.algorithms import PPD, StudentDistill, TeacherDistill
from ppdistill.core.version import __version__
from ppdistill.evaluation import EvalResult, evaluate
from ppdistill.experiment.recommended import recommended, recommended_n_envs, recommended_teacher_kwargs
from ppdistill.teachers import Teacher, load_teacher

# Saved models name the classes they pickle by module: students saved by ppdistill 0.1 refer
# to ``ppdistill.buffers`` and ``ppdistill.schedules``, which are now these modules
# (tests/test_file_formats.py loads such files).
sys.modules.setdefault("ppdistill.buffers", algorithms.buffers)
sys.modules.setdefault("ppdistill.schedules", core.schedules)

__all__ = [
    "PPD",
    "EvalResult",
    "StudentDistill",
    "Teacher",
    "TeacherDistill",
    "__version__",
    "evaluate",
    "load_teacher",
    "recommended",
    "recommended_n_envs",
    "recommended_teacher_kwargs",
]
