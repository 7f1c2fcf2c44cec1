"""Visual model-predictive control: plan with a world model, execute, replan.

:class:`MPCAgent` joins a :class:`~agents.models.PlanningModel`, a cost
(:mod:`agents.costs`) and a sampling optimiser (:mod:`agents.planners`) into the objective
``actions -> cost(model(context, actions), goal)``; none of the three knows the others.
"""
from __future__ import annotations

import logging
import time
from collections import deque
from typing import Any

import numpy as np
import torch

from mbvc.data.checks import check_finite
from mbvc.errors import ConfigError, ShapeError

from .core import image_to_tensor
from .costs import Cost, FramesAndStates, as_cost
from .models import PlanningModel
from .planners import PlannerConfig, SamplingOptimizer, TrajectoryOptimizer, build_planner

log = logging.getLogger(__name__)


class MPCAgent:
    """Receding-horizon controller over images.

    Every ``replan_every`` steps it plans an ``H x A`` action sequence from the last K frames
    (and the K - 1 actions between them), executes its first ``replan_every`` actions, then
    replans, warm-starting from the previous plan shifted by the executed steps.

    Args:
        model: the planning model (PredRNN, oracle, copy-last-frame...).
        cost: a :class:`~agents.costs.Cost` (or any ``cost(frames N x H x C x h x w, goal) -> N``);
            the agent calls its hooks: :meth:`~agents.costs.Cost.start` at :meth:`reset`,
            :meth:`~agents.costs.Cost.observe` on every observation.
        planner: an optimiser, or a :class:`PlannerConfig` / name built with the action bounds.
        horizon: planning horizon H.
        action_space: a gymnasium ``Box`` giving the bounds (needed unless ``planner`` is an
            optimiser, whose bounds are then used).
        replan_every: actions executed per plan (k).
        context_length: frames K given to the model; default ``model.context_length``.
        image_size: ``(h, w)`` observations and goal images are resized to; default
            ``model.image_size`` (``None``: as observed).
        warm_start: start each plan from the shifted previous one.
        record_predictions: after each plan, also predict the chosen plan's frames
            (:attr:`last_prediction`, ``H x C x h x w``) for visualisation; one extra model call.

    Example:
        >>> agent = MPCAgent(model, GoalImageCost(), "cem", horizon=10,
        ...                  action_space=env.action_space)  # doctest: +SKIP
        >>> obs, _ = env.reset(seed=0); agent.reset(obs, goal=env.unwrapped.goal_image())  # doctest: +SKIP
        >>> obs, *_ = env.step(agent.act(obs))  # doctest: +SKIP
    """

    def __init__(
        self,
        model: PlanningModel,
        cost: Cost | Any,
        planner: SamplingOptimizer | PlannerConfig | str,
        horizon: int,
        action_space: Any = None,
        *,
        replan_every: int = 1,
        context_length: int | None = None,
        image_size: tuple[int, int] | None = None,
        warm_start: bool = True,
        record_predictions: bool = False,
    ) -> None:
        if not isinstance(planner, SamplingOptimizer):
            if action_space is None:
                raise ConfigError("MPCAgent needs action_space (a Box) to build a planner from a name/config")
            planner = build_planner(planner, action_space.low, action_space.high)
        if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
            raise ConfigError(f"MPCAgent horizon must be a positive int (planned steps), got {horizon!r}")
        if not 1 <= replan_every <= horizon:
            raise ConfigError(f"need 1 <= replan_every <= horizon, got {replan_every=}, {horizon=}")
        self.model, self.cost, self.horizon = model, as_cost(cost), horizon
        self.replan_every = replan_every
        self.context_length = int(context_length or model.context_length)
        if self.context_length < 1:
            raise ConfigError(f"context_length must be >= 1, got {self.context_length}")
        self.image_size = image_size if image_size is not None else model.image_size
        self.record_predictions = record_predictions
        # A from the action space, else from the model (an optimiser with scalar bounds does
        # not know it), else from the optimiser's bounds.
        action_dim = getattr(model, "action_dim", None)
        if action_space is not None:
            if len(action_space.shape) != 1:
                raise ShapeError(f"MPCAgent needs a flat Box action space (A,), got shape {tuple(action_space.shape)}")
            if action_dim is not None and action_dim != action_space.shape[0]:
                raise ShapeError(f"action_space shape {tuple(action_space.shape)} does not match the model's "
                                 f"action dimension {action_dim}")
            action_dim = int(action_space.shape[0])
        self.trajectory = TrajectoryOptimizer(
            planner, horizon, keep_last_solution=warm_start, device=model.device, action_dim=action_dim
        )
        self._base_seed = planner.seed or 0
        self.plan_times: list[float] = []  # seconds per plan
        self.step_times: list[float] = []  # seconds of planning per act() call (0 between plans)
        self.last_plan: torch.Tensor | None = None
        self.last_prediction: torch.Tensor | None = None
        self.reset()

    @property
    def device(self) -> torch.device:
        """Device of the planning (the model's)."""
        return self.model.device

    def reset(self, obs: dict[str, Any] | None = None, goal: Any = None, seed: int | None = None) -> None:
        """Start an episode.

        Args:
            obs: the first observation (only read for a ``"goal"`` entry when ``goal`` is None;
                frames enter the history in :meth:`act`).
            goal: what the cost compares to: a goal image (``H x W x 3`` uint8 or
                ``C x h x w`` float), a pixel position, ...
            seed: re-seed the planner from its own seed and this one, so that an episode's
                plans do not depend on the episodes run before it.
        """
        if seed is not None:
            self.trajectory.optimizer.reseed(self._base_seed * 1_000_003 + seed)
        if goal is None and obs is not None:
            goal = obs.get("goal")
        self.goal = self._convert_goal(goal)
        if obs is not None and "image" in obs and self.goal is not None:
            # A goal may depend on the first observation (a designated object's appearance).
            self.goal = self.cost.start(self.goal, image_to_tensor(obs["image"], self.image_size, self.device))
        self._frames: deque[torch.Tensor] = deque(maxlen=self.context_length)
        self._actions: deque[torch.Tensor] = deque(maxlen=max(self.context_length - 1, 1))
        self._queue: deque[torch.Tensor] = deque()
        self._executed = 0
        self.trajectory.reset()
        self.plan_times, self.step_times = [], []

    def set_goal(self, goal: Any) -> None:
        """Change the goal mid-episode."""
        self.goal = self._convert_goal(goal)

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        """Return the next action (``A``, float32) for the observation dict ``obs``."""
        if "image" not in obs:
            raise ShapeError(f"MPCAgent.act needs an observation dict with an 'image', got keys {sorted(obs)}")
        frame = image_to_tensor(obs["image"], self.image_size, self.device)
        self._frames.append(frame)
        if self.goal is not None:
            # A cost may follow its goal through the observations (a designated object's
            # position): every frame, planned or not, so that the track never skips a step.
            self.goal = self.cost.observe(self.goal, frame)
        elapsed = 0.0
        if not self._queue:
            elapsed = self._plan()
        self.step_times.append(elapsed)
        action = self._queue.popleft()
        self._actions.append(action)
        self._executed += 1
        return action.detach().cpu().numpy().astype(np.float32)

    def plan(self) -> torch.Tensor:
        """Plan from the current history without executing (``H x A``); mainly for inspection."""
        self._plan()
        self._queue.clear()
        return self.last_plan  # type: ignore[return-value]

    def stats(self) -> dict[str, float]:
        """Planning time summary: ``plan_ms`` (mean per plan), ``step_ms`` (mean per step)."""
        mean = lambda xs: 1000.0 * float(np.mean(xs)) if xs else 0.0  # noqa: E731
        return {"plan_ms": mean(self.plan_times), "step_ms": mean(self.step_times), "plans": len(self.plan_times)}

    # -- internals ----------------------------------------------------------------------------

    def _context(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Last K frames ``1 x K x C x h x w`` and K - 1 actions ``1 x (K - 1) x A``.

        At the start of an episode the history is shorter than K: the first frame is repeated
        and the missing actions are zeros (the world stood still), which is what an
        action-conditioned model saw for a resting scene.
        """
        frames = list(self._frames)
        frames = [frames[0]] * (self.context_length - len(frames)) + frames
        context = torch.stack(frames)[None]
        if self.context_length == 1:
            return context, None
        a_dim = self.trajectory.action_dim
        acts = list(self._actions)[-(self.context_length - 1):] if self._actions else []
        zeros = [torch.zeros(a_dim, device=self.device)] * (self.context_length - 1 - len(acts))
        return context, torch.stack(zeros + [a.to(self.device) for a in acts])[None]

    def _plan(self) -> float:
        if not self._frames:
            raise ShapeError("MPCAgent has no observation yet: call act(obs)")
        start = time.perf_counter()
        context, context_actions = self._context()
        rollout_fn = self.model.bind(context, context_actions)
        goal, cost = self.goal, self.cost

        def objective(actions: torch.Tensor) -> torch.Tensor:
            predicted = rollout_fn(actions)
            costs = cost(predicted, goal)
            # NaN predictions give NaN costs, which the planner would rank as worst and still
            # return a plan. Checking the N costs is cheap; the predictions are searched only then.
            if not bool(torch.isfinite(torch.as_tensor(costs)).all()):
                if isinstance(predicted, FramesAndStates):
                    check_finite(predicted.states, "MPCAgent: the world model's predicted states", "predictions")
                    predicted = predicted.frames
                if isinstance(predicted, torch.Tensor):
                    check_finite(predicted, "MPCAgent: the world model's predicted frames", "predictions")
                check_finite(torch.as_tensor(costs), f"MPCAgent: the cost {type(cost).__name__}", "costs")
            return costs

        plan = self.trajectory.optimize(objective, executed=self._executed)
        self._executed = 0
        self._queue.extend(plan[: self.replan_every])
        elapsed = time.perf_counter() - start
        self.plan_times.append(elapsed)
        self.last_plan = plan
        if self.record_predictions:
            with torch.no_grad():
                predicted = rollout_fn(plan[None])
                self.last_prediction = (predicted.frames if isinstance(predicted, FramesAndStates) else predicted)[0]
        log.debug("planned in %.1f ms, best cost %.4g", 1000 * elapsed, self.trajectory.optimizer.info.best_cost)
        return elapsed

    def _convert_goal(self, goal: Any) -> Any:
        if goal is None:
            return None
        if isinstance(goal, np.ndarray) and goal.dtype == np.uint8 and goal.ndim == 3:
            return image_to_tensor(goal, self.image_size, self.device)
        if isinstance(goal, (np.ndarray, torch.Tensor, list, tuple)):
            return torch.as_tensor(goal, dtype=torch.float32, device=self.device)
        return goal
