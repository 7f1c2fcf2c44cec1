"""World models behind one planning interface: context frames + candidate actions -> frames.

Every model maps a context of K frames ``(1 x) K x C x h x w`` (plus, optionally, the K - 1
actions taken between them) and N candidate action sequences ``N x H x A`` to predicted frames
``N x H x C x h x w`` in [0, 1]. ``actions[:, 0]`` is the action taken at the last context frame.

:meth:`PlanningModel.bind` does the per-plan work once (encoding the context, snapshotting the
simulator) and returns a function of the candidates that the planner calls every iteration;
:meth:`PlanningModel.rollout` is the one-shot form. The same planner drives every model, so a
benchmark compares models, not planners.
"""
from __future__ import annotations

import abc
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from mbvc.errors import ConfigError, EnvError, ShapeError

from .core import image_to_tensor
from .costs import Cost, FramesAndStates, weighted_sum

log = logging.getLogger(__name__)

#: A plan up to this many times the model's trained prediction steps is logged as INFO, beyond as a WARNING.
EXTRAPOLATION_OK = 2


def extrapolation_level(horizon: int, trained: int | None) -> int:
    """Log level for planning ``horizon`` steps with a model trained to predict ``trained``.

    ``logging.NOTSET`` within the trained steps (or when unknown), INFO up to
    :data:`EXTRAPOLATION_OK` times them (the push demo's 5-step model plans better 10 steps
    ahead than 5, docs/recipe.md), WARNING beyond.
    """
    if trained is None or horizon <= trained:
        return logging.NOTSET
    return logging.INFO if horizon <= EXTRAPOLATION_OK * trained else logging.WARNING

RolloutFn = Callable[[torch.Tensor], torch.Tensor]
"""``fn(actions: N x H x A) -> frames: N x H x C x h x w``, bound to one context."""


def as_context(context: torch.Tensor) -> torch.Tensor:
    """Return a context as ``1 x K x C x h x w`` (accepts ``K x C x h x w``)."""
    if not isinstance(context, torch.Tensor) or context.dim() not in (4, 5):
        got = tuple(context.shape) if isinstance(context, torch.Tensor) else type(context).__name__
        raise ShapeError(f"context frames must be (K, C, h, w) or (1, K, C, h, w), got {got}")
    if context.dim() == 4:
        context = context[None]
    if context.shape[0] != 1:
        raise ShapeError(f"planning uses one context (batch 1), got {tuple(context.shape)}")
    return context


def check_actions(actions: torch.Tensor) -> None:
    """Raise :class:`ShapeError` unless ``actions`` is ``N x H x A``."""
    if not isinstance(actions, torch.Tensor) or actions.dim() != 3:
        got = tuple(actions.shape) if isinstance(actions, torch.Tensor) else type(actions).__name__
        raise ShapeError(f"candidate actions must be (N, H, A), got {got}")


class PlanningModel(abc.ABC):
    """The interface the MPC agent plans with.

    Attributes:
        context_length: context frames K the model wants.
        image_size: ``(h, w)`` of the frames it takes and predicts (``None``: any size).
        action_dim: action dimension A it expects (``None``: any).
    """

    context_length: int = 1
    image_size: tuple[int, int] | None = None
    action_dim: int | None = None

    @property
    def device(self) -> torch.device:
        """Device of contexts, candidates and predictions."""
        return torch.device("cpu")

    @abc.abstractmethod
    def bind(self, context: torch.Tensor, context_actions: torch.Tensor | None = None) -> RolloutFn:
        """Prepare a plan from ``context`` (``(1 x) K x C x h x w``) once; return the rollout fn.

        Args:
            context: the last K observed frames.
            context_actions: the K - 1 actions taken between them, ``(1 x) (K - 1) x A``.
        """

    def rollout(
        self, context: torch.Tensor, actions: torch.Tensor, context_actions: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Predict ``N x H x C x h x w`` frames for candidates ``N x H x A`` from a context."""
        return self.bind(context, context_actions)(actions)


class PredRNNModel(PlanningModel):
    """Adapter for an action-conditioned PredRNN / PredRNN-V2 (:func:`mbvc.models.build_model`).

    Per plan, the context is encoded once (``model.encode(context, actions)``); each planner
    iteration then rolls the encoded state forward for all N candidates
    (``model.rollout(state, H, actions)``, which broadcasts a batch-1 state), in chunks of
    ``chunk_size`` candidates to bound activation memory. Predictions are clipped to [0, 1].
    The context length K, the frame size and the action dimension come from ``model.config``
    (``input_length``, ``img_height`` x ``img_width``, ``num_action_ch``).

    Args:
        model: the network; put in eval mode here (planning never trains it).
        chunk_size: candidates per rollout call (``None``: all at once).
        context_length: K; defaults to ``model.config.input_length``.
        autocast: run the network under ``torch.autocast`` with this dtype (e.g.
            ``torch.bfloat16``: several times faster on CPUs with AMX / AVX512-BF16 and on
            GPUs, and precise enough to rank candidates); ``None`` keeps the weights' dtype.
            Predictions are returned as float32 either way.
        predict: what a rollout returns: ``"frames"`` (N x H x C x h x w, clipped to [0, 1]) or
            ``"frames+states"``: :class:`agents.costs.FramesAndStates`, the frames and the
            model's state readout (N x H x S, the entries of ``model.state_targets``,
            :mod:`mbvc.models.readout`), for a cost that reads both (a cost's ``reads``).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        chunk_size: int | None = 256,
        context_length: int | None = None,
        autocast: torch.dtype | None = None,
        predict: str = "frames",
    ) -> None:
        # mbvc's PredRNN keeps its ModelConfig in ``config``; accept ``cfg`` for other wrappers.
        cfg = getattr(model, "config", None) or getattr(model, "cfg", None)
        if cfg is not None and not getattr(cfg, "is_action", True):
            raise ConfigError(
                "planning needs an action-conditioned model (action_cond_predrnn or "
                f"action_cond_predrnn_v2), got {getattr(cfg, 'name', type(model).__name__)!r}"
            )
        if not (hasattr(model, "encode") and hasattr(model, "rollout")):
            raise ConfigError(f"PredRNNModel requires a model with encode() and rollout(), got {type(model).__name__}")
        if chunk_size is not None and chunk_size < 1:
            raise ConfigError(f"chunk_size must be >= 1 or None, got {chunk_size=}")
        if autocast is not None and autocast not in (torch.bfloat16, torch.float16):
            raise ConfigError(f"autocast must be None, torch.bfloat16 or torch.float16, got {autocast}")
        if predict not in ("frames", "frames+states"):
            raise ConfigError(f"predict must be 'frames' or 'frames+states', got {predict!r}")
        if predict == "frames+states" and not getattr(cfg, "state_targets", ()):
            raise ConfigError("a cost that reads predicted states needs a world model trained with "
                              f"model.state_targets; this {getattr(cfg, 'name', type(model).__name__)} has none")
        self.predict = predict
        self.model = model.eval()
        self.chunk_size = chunk_size
        self.autocast = autocast
        k = context_length if context_length is not None else getattr(cfg, "input_length", 1)
        if int(k) < 1:
            raise ConfigError(f"context_length must be >= 1, got {k}")
        self.context_length = int(k)
        if cfg is not None:
            self.image_size = (int(cfg.img_height), int(cfg.img_width))
        self.action_dim = getattr(cfg, "num_action_ch", None)
        # Steps the model was trained to predict; a longer horizon extrapolates.
        total = getattr(cfg, "total_length", None)
        self.trained_horizon: int | None = None if total is None else int(total) - self.context_length
        self._said_horizon = logging.NOTSET  # the highest level logged about the horizon

    @property
    def device(self) -> torch.device:
        param = next(iter(self.model.parameters()), None)
        return param.device if param is not None else torch.device("cpu")

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast)

    @torch.no_grad()
    def bind(self, context: torch.Tensor, context_actions: torch.Tensor | None = None) -> RolloutFn:
        state = self._encode(context, context_actions)

        @torch.no_grad()
        def rollout_fn(actions: torch.Tensor) -> torch.Tensor:
            return self._roll(state, actions)

        return rollout_fn

    def _encode(self, context: torch.Tensor, context_actions: torch.Tensor | None) -> Any:
        context = as_context(context).to(self.device)
        if context.shape[1] != self.context_length:
            raise ShapeError(
                f"PredRNNModel expects K = context_length = {self.context_length} context frames "
                f"(the model's input_length unless PredRNNModel(context_length=...) says otherwise), "
                f"got {context.shape[1]}"
            )
        if context_actions is not None:
            context_actions = context_actions.to(self.device, torch.float32)
            context_actions = context_actions[None] if context_actions.dim() == 2 else context_actions
        elif self.action_dim is not None and context.shape[1] > 1:
            # No history yet (episode start): the context frames are repeats, nothing moved.
            context_actions = context.new_zeros(1, context.shape[1] - 1, self.action_dim)
        with self._autocast():
            return self.model.encode(context, actions=context_actions)

    def _roll(self, state: Any, actions: torch.Tensor) -> torch.Tensor | FramesAndStates:
        """The candidates' predicted frames (and state readout) from an encoded state, in chunks of ``chunk_size``."""
        check_actions(actions)
        self._check_horizon(actions.shape[1])
        actions = actions.to(self.device, torch.float32)
        size = self.chunk_size or actions.shape[0]
        frames_only = self.predict == "frames"
        extra = {} if frames_only else {"states": True}  # a model without a readout need not take the keyword
        with self._autocast():
            outs = [self.model.rollout(state, actions.shape[1], actions=chunk, **extra) for chunk in actions.split(size)]
        if frames_only:
            out = outs[0] if len(outs) == 1 else torch.cat(outs)
            return out.float().clamp_(0.0, 1.0)
        frames = torch.cat([f for f, _ in outs]).float().clamp_(0.0, 1.0)
        return FramesAndStates(frames, torch.cat([extras["states"] for _, extras in outs]).float())

    def _check_horizon(self, horizon: int) -> None:
        """Say once per level (:func:`extrapolation_level`) when a plan rolls the model past its trained steps."""
        level = extrapolation_level(horizon, self.trained_horizon)
        if level <= self._said_horizon:  # each level once: a later, longer plan still gets its WARNING
            return
        self._said_horizon = level
        log.log(level, "planning horizon %d is longer than the %d steps the model was trained to predict "
                "(total_length - input_length); predictions beyond it are extrapolation", horizon, self.trained_horizon)


class CopyLastFrameModel(PlanningModel):
    """Baseline "model": the future looks like the last context frame, whatever the actions.

    Every candidate then has the same cost, so MPC with it acts like a random controller; it
    measures how much a learnt model's foresight adds.
    """

    def bind(self, context: torch.Tensor, context_actions: torch.Tensor | None = None) -> RolloutFn:
        last = as_context(context)[0, -1]

        def rollout_fn(actions: torch.Tensor) -> torch.Tensor:
            check_actions(actions)
            return last.to(actions.device).expand(actions.shape[0], actions.shape[1], *last.shape)

        return rollout_fn


class OracleModel(PlanningModel):
    """The true simulator as a model: candidates are replayed in a copy of the environment.

    :meth:`bind` snapshots the controlled environment (``env.unwrapped.get_state()``); each
    candidate restores the snapshot in the copy (``set_state``), steps its actions and keeps the
    rendered observations. The context frames are ignored.

    Args:
        env: the environment being controlled (read with ``get_state`` only, never stepped).
        make_env: builds the simulation copy; default ``gymnasium.make(env.spec.id, **kwargs)``.
        image_size: resize rendered frames to ``(h, w)`` (``None``: the env's size).
        render: render the candidates' frames. With ``False`` the copy skips rendering, which is
            nearly all of a MuJoCo step's time, and the prediction is the true state instead of
            pixels: per step the goal distance (``info["distance"]``) and the pusher's distance to
            the object (``info["pusher_distance"]``, 0 where absent), as ``N x H x 2 x 1 x 1``
            "frames" that :class:`OracleStateCost` scores.
    """

    def __init__(
        self,
        env: Any,
        make_env: Callable[[], Any] | None = None,
        image_size: tuple[int, int] | None = None,
        render: bool = True,
    ) -> None:
        self.env = env
        self.make_env = make_env
        self.image_size = image_size
        self.render = render
        shape = getattr(getattr(env, "action_space", None), "shape", None)
        self.action_dim = int(shape[0]) if shape and len(shape) == 1 else None
        self._sim: Any = None

    def attach(self, env: Any) -> None:
        """Control another environment (of the same kind) from now on."""
        self.env = env

    def close(self) -> None:
        """Close the simulation copy."""
        if self._sim is not None:
            self._sim.close()
            self._sim = None

    def _simulator(self) -> Any:
        if self._sim is None:
            if self.make_env is not None:
                sim = self.make_env()
            else:
                spec = getattr(self.env, "spec", None)
                if spec is None:
                    raise EnvError("OracleModel needs make_env= for an environment not built by gymnasium.make")
                import gymnasium as gym

                sim = gym.make(spec.id, **(spec.kwargs or {}))
            sim.reset(seed=0)  # initialise the copy; its state is overwritten before every use
            self._sim = sim.unwrapped  # step the bare env: no time limit or order checks
            if not self.render and hasattr(self._sim, "observe"):
                # The copy is private to the oracle, so its observation may skip the image:
                # step() builds observations through observe(), and rendering is ~98% of it.
                state_vector = getattr(self._sim, "_state_vector", None)
                self._sim.observe = lambda: {"image": None, "state": state_vector() if state_vector else None}
        return self._sim

    def bind(self, context: torch.Tensor, context_actions: torch.Tensor | None = None) -> RolloutFn:
        unwrapped = getattr(self.env, "unwrapped", self.env)
        if not (hasattr(unwrapped, "get_state") and hasattr(self._simulator(), "set_state")):
            raise EnvError("OracleModel requires environments with get_state() / set_state()")
        state = unwrapped.get_state()
        sim = self._simulator()

        def rollout_fn(actions: torch.Tensor) -> torch.Tensor:
            check_actions(actions)
            acts = actions.detach().cpu().numpy().astype(np.float32)
            n, h = acts.shape[:2]
            images, distances = [], np.zeros((n, h, 2))
            for i in range(n):
                sim.set_state(state)
                for t in range(h):
                    obs, _, _, _, info = sim.step(acts[i, t])
                    images.append(obs["image"])
                    distances[i, t] = info.get("distance", np.nan), info.get("pusher_distance", 0.0)
            if not self.render:  # the true state: goal and pusher distances, N x H x 2 x 1 x 1
                return torch.as_tensor(distances, dtype=torch.float32, device=actions.device)[..., None, None]
            frames = image_to_tensor(np.stack(images), self.image_size)
            return frames.reshape(n, h, *frames.shape[1:]).to(actions.device)

        return rollout_fn


class OracleStateCost(Cost):
    """True-state cost for :class:`OracleModel` ``(render=False)``: the target's distance to the goal (metres).

    Scores the oracle's state predictions (per step the goal distance and the pusher's distance
    to the object, ``N x H x 2 x 1 x 1``), not pixels.

    Args:
        pusher_weight: weight of the pusher's distance to the object (shaping: until the
            pusher touches the object, the object's distance alone is flat in the actions).
        final_weight: relative weight of the final step (see :func:`agents.costs.step_weights`).
    """

    def __init__(self, pusher_weight: float = 0.0, final_weight: float = 1.0) -> None:
        self.pusher_weight = pusher_weight
        self.final_weight = final_weight

    def __call__(self, frames: torch.Tensor, goal: Any = None) -> torch.Tensor:
        if frames.dim() != 5 or tuple(frames.shape[2:]) != (2, 1, 1):
            raise ShapeError("OracleStateCost scores the true-state predictions of OracleModel(render=False), "
                             f"N x H x 2 x 1 x 1, got {tuple(frames.shape)}")
        dist = frames[:, :, 0, 0, 0] + self.pusher_weight * frames[:, :, 1, 0, 0]
        return weighted_sum(dist, None, self.final_weight)

    def goal_for_env(self, env: Any, image_size: tuple[int, int]) -> Any:
        """None: the simulator knows the goal."""
        return None
