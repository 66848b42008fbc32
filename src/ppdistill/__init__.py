"""ppdistill: Proximal Policy Distillation and classic policy distillation for stable-baselines3."""

from ppdistill.algorithms import PPD, StudentDistill, TeacherDistill
from ppdistill.evaluation import EvalResult, evaluate
from ppdistill.teachers import Teacher, load_teacher

__all__ = ["PPD", "EvalResult", "StudentDistill", "Teacher", "TeacherDistill", "evaluate", "load_teacher"]
__version__ = "0.1.0"
