"""The world-model interface that the trainer, the evaluation and the planners share, and the
registry of model families.

A world model is a ``torch.nn.Module`` with a ``config`` and two groups of methods:

* **training** (all the trainer calls): :meth:`WorldModel.setup_training` once,
  :meth:`WorldModel.training_updates` and :meth:`WorldModel.training_loss` every iteration,
  :meth:`WorldModel.training_state` / :meth:`WorldModel.load_training_state` in checkpoints,
  :meth:`WorldModel.training_scalars` for the log. The training procedure (PredRNN's
  scheduled / reverse scheduled sampling and its time-reversed second update) lives with the
  family, as OpenSTL keeps it in its "method", so the trainer stays model-agnostic;
* **inference** (all evaluation and planning call): :meth:`WorldModel.encode`,
  :meth:`WorldModel.rollout` and :meth:`WorldModel.predict`.

Frames are (B, T, C, H, W) float in [0, 1]; actions (B, T, A), ``actions[:, t]`` taken at frame t.

Model families are found by the ``name`` of their config (``model.name`` in a preset) in a
plain dict. Adding a family takes a config dataclass and a module:

1. a frozen config dataclass with ``name``, ``input_length``, ``total_length``, ``img_channel``,
   ``img_width``, ``img_height``, ``is_action``, ``num_action_ch``, ``to_dict()`` and a
   ``from_dict(d)`` classmethod that rejects unknown keys (see :class:`mbvc.models.ModelConfig`);
2. an ``nn.Module`` subclassing :class:`WorldModel` (and, for a recurrent model trained with
   PredRNN's curricula, :class:`mbvc.models.curriculum.CurriculumTraining`, which supplies the
   training methods around a ``forward(frames, mask, actions) -> ModelOutput``);
3. one line at the bottom of its module, e.g. for ``mbvc/models/convlstm.py``::

       register_model_family("convlstm", ConvLSTMConfig, ConvLSTM)

   (a family that reuses :class:`~mbvc.models.ModelConfig`, e.g. a ``PredRNN`` subclass, passes
   ``ModelConfig`` and registers each of its names, as ``mbvc/models/predrnn.py`` does)
   and an import of that module in ``mbvc/models/__init__.py``. Presets then say
   ``model: {name: convlstm, ...}``; ``build_model``, the model files, the trainer,
   ``mbvc test`` and the planners need nothing else.

Example:
    >>> from mbvc.models import ModelConfig, build_model, model_families
    >>> "predrnn_v2" in model_families()
    True
    >>> model = build_model(ModelConfig(name="predrnn", num_hidden=(4,), patch_size=2, img_width=8,
    ...                                 input_length=2, total_length=4))
    >>> isinstance(model, WorldModel)
    True
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from mbvc.errors import ConfigError, did_you_mean

#: A training batch: ``{"frames": (B, T', C, H, W) float in [0, 1], "actions"?: (B, T', A)}``,
#: T' >= the model's training length; a family may add entries (e.g. a curriculum mask).
Batch = dict[str, torch.Tensor]


class WorldModel(ABC):
    """What the trainer, the evaluation and the planners need from a video world model.

    Subclasses are ``torch.nn.Module`` subclasses too (``class M(WorldModel, nn.Module)``) and
    set ``self.config``.
    """

    config: Any

    # ------------------------------------------------------------------ training
    def setup_training(self, train_cfg: Any, *, batch_size: int, rank: int = 0, world_size: int = 1) -> None:
        """Prepare the training procedure once, before the first iteration.

        Args:
            train_cfg: the ``train`` section (:class:`mbvc.training.TrainConfig`); a family reads
                the settings of its procedure from it (e.g. ``curriculum``, ``reverse_input``, ``seed``).
            batch_size: the global batch size (all processes together).
            rank: this process's rank; its share of the batch is ``batch[rank::world_size]``.
            world_size: number of processes.
        """

    def training_updates(self, batch: Batch, step: int) -> list[Batch]:
        """The inputs of the optimiser updates of iteration ``step`` (counting from 1).

        The trainer makes one optimiser update per returned batch, in order, each with
        :meth:`training_loss` on the weights the previous update left. The default is one update
        on ``batch``; PredRNN adds a second on the time-reversed frames.

        Args:
            batch: this process's share of the batch, on the training device.
            step: the iteration.
        """
        return [batch]

    @abstractmethod
    def training_loss(self, batch: Batch, step: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The loss of one update and its parts, for logging.

        Called through the trainer's wrapper (DDP, ``torch.compile``), so it runs the network
        with ``self(...)``.

        Args:
            batch: one entry of :meth:`training_updates`.
            step: the iteration.

        Returns:
            ``(loss, metrics)``: a scalar to minimise and named scalar tensors (``mse``...),
            the same names every call; the trainer logs them as ``train/<name>``.
        """

    def training_state(self) -> dict[str, Any]:
        """The procedure's state besides the weights (e.g. a curriculum's random generator),
        stored in every checkpoint so that a resumed run continues exactly."""
        return {}

    def load_training_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`training_state` returned."""

    def training_scalars(self, step: int) -> dict[str, float]:
        """Values of the procedure worth logging at ``step`` (e.g. sampling probabilities)."""
        return {}

    # ------------------------------------------------------------------ inference
    @abstractmethod
    def encode(self, context: torch.Tensor, actions: torch.Tensor | None = None) -> Any:
        """Run the context once.

        Args:
            context: (B, K, C, H, W) true frames in [0, 1].
            actions: (B, >= K-1, A) actions taken at the context frames (action models).

        Returns:
            A state from which :meth:`rollout` predicts frame K onwards.
        """

    @abstractmethod
    def rollout(self, state: Any, n_future: int, actions: torch.Tensor | None = None) -> torch.Tensor:
        """Predict ``n_future`` frames from an encoded state, feeding predictions back.

        Args:
            state: from :meth:`encode`; a batch-1 state is broadcast to N action sequences.
            n_future: frames to predict.
            actions: (N, >= n_future, A) for action models; ``actions[:, 0]`` is taken at the
                last context frame.

        Returns:
            (N, n_future, C, H, W) raw predictions.
        """

    @abstractmethod
    def predict(self, context: torch.Tensor, n_future: int, actions: torch.Tensor | None = None) -> torch.Tensor:
        """Test-time generation from true context frames (no gradients).

        Args:
            context: (B, K, C, H, W) in [0, 1].
            n_future: frames to predict.
            actions: (B, >= K-1+n_future, A) for action models.

        Returns:
            (B, n_future, C, H, W) raw predictions (clip to [0, 1] for display or metrics).
        """


@dataclass(frozen=True)
class ModelFamily:
    """A registered model family.

    Attributes:
        name: the ``model.name`` that selects it.
        config_cls: its config dataclass (``from_dict`` / ``to_dict``).
        build: makes the (randomly initialised) model from a config.
    """

    name: str
    config_cls: type
    build: Callable[[Any], WorldModel]


_FAMILIES: dict[str, ModelFamily] = {}


def register_model_family(name: str, config_cls: type, build: Callable[[Any], WorldModel]) -> None:
    """Make ``model.name: <name>`` build ``build(config_cls.from_dict(section))``.

    Registering the same name again replaces the entry (re-imports, notebooks).

    Args:
        name: the model name presets and model files use.
        config_cls: the family's config dataclass.
        build: a model class or factory taking the config.
    """
    _FAMILIES[name] = ModelFamily(name, config_cls, build)


def model_families() -> list[str]:
    """The registered model names."""
    return sorted(_FAMILIES)


def model_family(name: str) -> ModelFamily:
    """The family registered as ``name``.

    Raises:
        ConfigError: no such family, with the registered names and a "did you mean".
    """
    family = _FAMILIES.get(name)
    if family is None:
        raise ConfigError(f"unknown model name {name!r}; registered: {', '.join(model_families())}."
                          + did_you_mean(str(name), _FAMILIES))
    return family


def check_model_name(name: str, config_cls: type) -> None:
    """Check that ``name`` is registered, with ``config_cls`` (or a base of it) as its config class.

    Config classes call this in ``__post_init__``, so model names come from the registry alone.

    Raises:
        ConfigError: an unregistered name (with a "did you mean"), or one of another family.
    """
    family = model_family(name)
    if not issubclass(config_cls, family.config_cls):
        raise ConfigError(f"model name {name!r} is registered with {family.config_cls.__name__}, "
                          f"not {config_cls.__name__}")


def model_config_from_dict(d: dict[str, Any], default_name: str = "predrnn_v2") -> Any:
    """Validate a ``model`` section with the config class of its family (``d["name"]``).

    Raises:
        ConfigError: unknown family, unknown key or invalid value.
    """
    if not isinstance(d, dict):
        raise ConfigError(f"a model section must be a mapping, got {type(d).__name__}")
    return model_family(str(d.get("name", default_name))).config_cls.from_dict(d)


def build_model(config: Any) -> WorldModel:
    """Build the network described by ``config`` through its family (randomly initialised)."""
    return model_family(config.name).build(config)
