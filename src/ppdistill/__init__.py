"""ppdistill: Proximal Policy Distillation for stable-baselines3."""

from ppdistill.teachers import Teacher, load_teacher

__all__ = ["Teacher", "load_teacher"]
__version__ = "0.1.0"
