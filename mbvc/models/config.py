"""The frozen configuration of a PredRNN-family model.

Field names follow the reference ``run.py`` flags so that a user's training script maps onto
:class:`ModelConfig` one to one (``name`` is the reference's ``model_name``).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from mbvc.errors import ConfigError, did_you_mean
from mbvc.models.base import check_model_name
from mbvc.models.transforms import OUTPUTS

#: Keys of removed options, with the value every model now has: a model file or run config that
#: an older mbvc wrote with that value loads (the key is dropped); any other value is refused.
RETIRED = {
    "views": (1, "several camera views side by side were removed; mbvc models take one camera's frames"),
    "encoder_downsample": (4, "the 2x encoder was removed; the encoder shrinks frames 4x, as the reference's"),
}


@dataclass(frozen=True)
class ModelConfig:
    """Architecture and input rule of a PredRNN / PredRNN-V2 model.

    Attributes:
        name: a model name registered with this config class
            (:func:`mbvc.models.base.register_model_family`): ``predrnn``, ``predrnn_v2``,
            ``action_cond_predrnn``, ``action_cond_predrnn_v2`` (:mod:`mbvc.models.predrnn`),
            ``convlstm``, ``action_cond_convlstm`` (:mod:`mbvc.models.convlstm`).
        num_hidden: hidden channels per layer; all equal (one memory M zigzags through them).
        filter_size: odd convolution kernel size k.
        stride: convolution stride of the cells; only 1 keeps state sizes fixed.
        patch_size: space-to-depth factor p applied to frames.
        img_channel: channels C of a frame.
        img_width: frame width W (the reference's square-image size).
        img_height: frame height H; ``None`` means square (``img_width``).
        layer_norm: LayerNorm after every gate convolution.
        input_length: context length K.
        total_length: sequence length T used in training.
        reverse_scheduled_sampling: input rule and curriculum of PredRNN-V2 (always on for
            action-conditioned models).
        decouple_beta: weight of the memory-decoupling loss (V2 models only).
        conv_on_input: action models: encode frames/actions with two stride-2 convolutions.
        res_on_conv: action models: skip connections from the encoder to the decoder.
        num_action_ch: action dimension A (action models).
        residual_output: predict each frame as the input frame plus the decoder's output (not
            in the reference; off by default). What does not move is copied for free, so a
            short run spends its updates on what moves (docs/control.md: Reacher;
            not kept for Push, docs/recipe.md).
        output: the output stage (:mod:`mbvc.models.transforms`, not in the reference):
            ``pixels`` (the decoder regresses the frame, the reference's) or ``flow`` (the
            decoder also predicts a dense backward flow and three softmax masks, and the frame
            is ``m0 * warp(prev, flow) + m1 * first + m2 * generated``). Non-pixel outputs need
            ``patch_size=1``, exclude ``residual_output`` and have no reference export.
        state_targets: entries of the training data's ``states`` vector (privileged simulator
            state, e.g. the pusher's and the block's positions) that a readout of the top
            hidden state predicts at every predicted step (:mod:`mbvc.models.readout`, not in the
            reference). ``()`` (default): no readout. Trained as an auxiliary target; planning
            costs may read the predicted state (the push cost's ``cost.block_entries``).
        state_weight: weight of the readout's mean squared error (in the state's own units) in
            the training loss.
    """

    name: str = "predrnn_v2"
    num_hidden: tuple[int, ...] = (128, 128, 128, 128)
    filter_size: int = 5
    stride: int = 1
    patch_size: int = 4
    img_channel: int = 1
    img_width: int = 64
    img_height: int | None = None
    layer_norm: bool = False
    input_length: int = 10
    total_length: int = 20
    reverse_scheduled_sampling: bool = True
    decouple_beta: float = 0.1
    conv_on_input: bool = True
    res_on_conv: bool = True
    num_action_ch: int = 4
    residual_output: bool = False
    output: str = "pixels"
    state_targets: tuple[int, ...] = ()
    state_weight: float = 1.0

    def __post_init__(self) -> None:
        check_model_name(self.name, type(self))
        hidden = tuple(int(h) for h in self.num_hidden)
        object.__setattr__(self, "num_hidden", hidden)
        if self.img_height is None:
            object.__setattr__(self, "img_height", self.img_width)
        if not hidden or min(hidden) <= 0:
            raise ConfigError(f"num_hidden must list positive sizes, got {self.num_hidden=}")
        if len(set(hidden)) != 1:
            raise ConfigError(
                "num_hidden must be equal in every layer: one spatiotemporal memory flows through "
                f"all layers, got {self.num_hidden=}"
            )
        if self.filter_size % 2 != 1:
            raise ConfigError(f"filter_size must be odd, got {self.filter_size=}")
        if self.stride != 1:
            raise ConfigError(f"stride must be 1 (other strides change state sizes), got {self.stride=}")
        if self.patch_size < 1:
            raise ConfigError(f"patch_size must be >= 1, got {self.patch_size=}")
        for dim, size in (("img_width", self.img_width), ("img_height", self.img_height)):
            if size % self.patch_size:
                raise ConfigError(f"{dim}={size} is not divisible by patch_size={self.patch_size}")
            if self.is_action and self.conv_on_input and (size // self.patch_size) % 4:
                raise ConfigError(
                    f"{dim}/patch_size = {size // self.patch_size} must be divisible by 4 for conv_on_input "
                    "(two stride-2 encoder convolutions)"
                )
        if self.is_action and self.conv_on_input and hidden[0] % 2:
            raise ConfigError(f"conv_on_input needs an even hidden size, got {self.num_hidden=}")
        if not 1 <= self.input_length < self.total_length:
            raise ConfigError(
                f"need 1 <= input_length < total_length, got {self.input_length=}, {self.total_length=}"
            )
        if self.is_action and not self.reverse_scheduled_sampling:
            raise ConfigError(
                "action-conditioned models use the reverse scheduled sampling input rule: set "
                "reverse_scheduled_sampling=True (reference flag --reverse_scheduled_sampling 1)"
            )
        if self.is_action and self.num_action_ch < 1:
            raise ConfigError(f"action models need num_action_ch >= 1, got {self.num_action_ch=}")
        if self.output not in OUTPUTS:
            raise ConfigError(f"model.output must be one of {', '.join(OUTPUTS)}, got {self.output!r}."
                              + did_you_mean(str(self.output), OUTPUTS))
        if self.output != "pixels" and self.patch_size != 1:
            raise ConfigError(f"model.output={self.output!r} needs patch_size=1 (it moves pixels, not patches), "
                              f"got patch_size={self.patch_size}")
        if self.output != "pixels" and self.residual_output:
            raise ConfigError(f"model.output={self.output!r} and residual_output=True exclude each other "
                              "(the transformation already copies what does not move)")
        if self.decouple_beta < 0:
            raise ConfigError(f"decouple_beta must be >= 0, got {self.decouple_beta=}")
        self._check_state_targets()

    def _check_state_targets(self) -> None:
        targets = self.state_targets
        if isinstance(targets, (str, bytes)) or not isinstance(targets, (list, tuple)) or not all(
                isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in targets):
            raise ConfigError(f"model.state_targets must list indices >= 0 into the data's states, got {targets!r}")
        if len(set(targets)) != len(targets):
            raise ConfigError(f"model.state_targets lists an index twice: {list(targets)}")
        object.__setattr__(self, "state_targets", tuple(targets))
        if not (isinstance(self.state_weight, (int, float)) and math.isfinite(self.state_weight)
                and self.state_weight >= 0):
            raise ConfigError(f"model.state_weight must be a finite number >= 0, got {self.state_weight!r}")

    @property
    def is_action(self) -> bool:
        """Whether the model is action-conditioned."""
        return self.name.startswith("action_cond")

    @property
    def is_v2(self) -> bool:
        """Whether the model has the memory-decoupling loss (PredRNN-V2)."""
        return self.name.endswith("_v2")

    @property
    def num_layers(self) -> int:
        """Number of stacked cells."""
        return len(self.num_hidden)

    @property
    def hidden(self) -> int:
        """Hidden size H of every layer."""
        return self.num_hidden[0]

    @property
    def patch_channels(self) -> int:
        """Channels of a patched frame, p * p * C."""
        return self.patch_size**2 * self.img_channel

    @property
    def reverse_input_rule(self) -> bool:
        """True when step t >= 1 mixes the true frame t with the prediction (PredRNN-V2 rule)."""
        return self.reverse_scheduled_sampling or self.is_action

    def mask_steps(self, total_length: int | None = None) -> int:
        """Number of per-sample mask entries the training forward expects.

        ``T - 2`` for the reverse rule, ``T - K - 1`` for scheduled sampling.
        """
        t = self.total_length if total_length is None else total_length
        return t - 2 if self.reverse_input_rule else t - self.input_length - 1

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict that :meth:`from_dict` turns back into this config."""
        d = dataclasses.asdict(self)
        d["num_hidden"] = list(self.num_hidden)
        d["state_targets"] = list(self.state_targets)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        """Build a config from a dict, rejecting unknown keys by name (see :data:`RETIRED`)."""
        names = {f.name for f in dataclasses.fields(cls)}
        d = dict(d)
        for key in sorted(set(RETIRED) & set(d) - names):
            value = d.pop(key)
            if value != RETIRED[key][0]:
                raise ConfigError(f"model.{key}={value!r} is no longer supported ({RETIRED[key][1]}); "
                                  "this model or run was made by an older mbvc")
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(
                f"unknown model config key {unknown[0]!r}." + did_you_mean(unknown[0], names)
            )
        if "num_hidden" in d:
            d["num_hidden"] = _parse_hidden(d["num_hidden"])
        bad = [k for k, v in d.items() if isinstance(v, float) and not math.isfinite(v)]
        if bad:
            raise ConfigError(f"model.{bad[0]} must be a finite number, got {d[bad[0]]}")
        try:
            return cls(**d)
        except (TypeError, ValueError) as e:
            if isinstance(e, ConfigError):
                raise
            raise ConfigError(f"a model value has the wrong type ({e})") from None

    def replace(self, **changes: Any) -> ModelConfig:
        """Return a copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)


def _parse_hidden(value: Any) -> tuple[int, ...]:
    if isinstance(value, str):
        try:
            return tuple(int(v) for v in value.split(",") if v.strip())
        except ValueError:
            raise ConfigError(f"num_hidden must look like '128,128,128,128', got {value!r}") from None
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"num_hidden must be a list of layer sizes, e.g. [32,32], got {value!r}")
    try:
        return tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"num_hidden must be a list of integer layer sizes, got {value!r}") from None
