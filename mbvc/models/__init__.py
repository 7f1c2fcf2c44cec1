"""World models: the interface and family registry, PredRNN-family configs, the network,
curricula, checkpoints and reference import (see :mod:`mbvc.models.base` to add a family).

Example:
    >>> import torch
    >>> from mbvc.models import ModelConfig, build_model, curriculum_mask, CurriculumConfig
    >>> cfg = ModelConfig(name="predrnn_v2", num_hidden=(8, 8), patch_size=2, img_width=16,
    ...                   input_length=2, total_length=4)
    >>> model = build_model(cfg)
    >>> frames = torch.rand(3, 4, 1, 16, 16)
    >>> out = model(frames, curriculum_mask(cfg, CurriculumConfig(), itr=1, batch=3))
    >>> out.frames.shape, out.loss.shape
    (torch.Size([3, 3, 1, 16, 16]), torch.Size([]))
    >>> model.predict(frames[:, :2], n_future=5).shape
    torch.Size([3, 5, 1, 16, 16])
"""
from __future__ import annotations

from mbvc.models.base import (
    Batch,
    ModelFamily,
    WorldModel,
    build_model,
    check_model_name,
    model_config_from_dict,
    model_families,
    model_family,
    register_model_family,
)
from mbvc.models.checkpoint import load_model, read_model_file, save_model
from mbvc.models.config import ModelConfig
from mbvc.models.convlstm import ConvLSTM
from mbvc.models.curriculum import (
    CurriculumConfig,
    CurriculumTraining,
    curriculum_mask,
    reverse_sampling_probs,
    scheduled_sampling_eta,
    test_mask,
)
from mbvc.models.patch import patchify, unpatchify
from mbvc.models.predrnn import ModelOutput, PredRNN, RecurrentState
from mbvc.models.reference import (
    config_from_reference_flags,
    export_reference_state_dict,
    from_reference,
    import_reference_state_dict,
)
from mbvc.models.transforms import OUTPUTS, compose, push_distribution, warp


__all__ = [
    "WorldModel", "Batch", "ModelFamily", "register_model_family", "model_family", "model_families",
    "model_config_from_dict", "check_model_name", "CurriculumTraining",
    "ModelConfig", "ModelOutput", "PredRNN", "ConvLSTM", "RecurrentState", "CurriculumConfig",
    "build_model", "curriculum_mask", "test_mask", "scheduled_sampling_eta", "reverse_sampling_probs",
    "patchify", "unpatchify", "save_model", "load_model", "read_model_file", "from_reference",
    "config_from_reference_flags", "import_reference_state_dict", "export_reference_state_dict",
    "OUTPUTS", "warp", "compose", "push_distribution",
]
