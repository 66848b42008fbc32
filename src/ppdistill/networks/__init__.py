"""Network pieces: frozen observation normalization, one-pass actor-critic evaluation, CNN
feature extractors and the student size presets.

The names are also exported here because saved models refer to some of them as
``ppdistill.networks.<name>`` (e.g. a MinAtar teacher's ``ImpalaCNNExtractor``).
"""

from ppdistill.networks.cnn import ImpalaCNNExtractor, NatureCNNExtractor
from ppdistill.networks.forward import TensorObs, actor_critic_forward
from ppdistill.networks.normalization import (
    NormalizedFlattenExtractor,
    ObsNormalizer,
    RunningNormalizedFlattenExtractor,
)
from ppdistill.networks.presets import (
    MLP_SIZES,
    STUDENT_SIZES,
    image_student_kwargs,
    mlp_param_count,
    mlp_student_arch,
    teacher_mlp_width,
)

__all__ = [
    "MLP_SIZES",
    "STUDENT_SIZES",
    "ImpalaCNNExtractor",
    "NatureCNNExtractor",
    "NormalizedFlattenExtractor",
    "ObsNormalizer",
    "RunningNormalizedFlattenExtractor",
    "TensorObs",
    "actor_critic_forward",
    "image_student_kwargs",
    "mlp_param_count",
    "mlp_student_arch",
    "teacher_mlp_width",
]
