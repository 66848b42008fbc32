"""Distillation algorithms: PPD and the two classic baselines, and PPD into a MaskablePPO student."""

from ppdistill.algorithms.base import DistillationMixin
from ppdistill.algorithms.baselines import KLDistillation, StudentDistill, TeacherDistill
from ppdistill.algorithms.maskable import MaskablePPD
from ppdistill.algorithms.ppd import PPD

__all__ = ["PPD", "DistillationMixin", "KLDistillation", "MaskablePPD", "StudentDistill", "TeacherDistill"]
