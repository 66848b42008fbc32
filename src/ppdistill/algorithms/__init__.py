"""Distillation algorithms: PPD and the two classic baselines."""

from ppdistill.algorithms.base import DistillationMixin
from ppdistill.algorithms.baselines import KLDistillation, StudentDistill, TeacherDistill
from ppdistill.algorithms.ppd import PPD

__all__ = ["PPD", "DistillationMixin", "KLDistillation", "StudentDistill", "TeacherDistill"]
