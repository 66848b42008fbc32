"""Distillation algorithms: PPD and the two classic baselines, PPD into a MaskablePPO student,
and all three into a RecurrentPPO (LSTM) student."""

from ppdistill.algorithms.base import DistillationMixin
from ppdistill.algorithms.baselines import KLDistillation, StudentDistill, TeacherDistill
from ppdistill.algorithms.maskable import MaskablePPD
from ppdistill.algorithms.ppd import PPD
from ppdistill.algorithms.recurrent import RecurrentPPD, RecurrentStudentDistill, RecurrentTeacherDistill

__all__ = [
    "PPD",
    "DistillationMixin",
    "KLDistillation",
    "MaskablePPD",
    "RecurrentPPD",
    "RecurrentStudentDistill",
    "RecurrentTeacherDistill",
    "StudentDistill",
    "TeacherDistill",
]
