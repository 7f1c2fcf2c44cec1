"""Planning models: the PredRNN adapter (with a fake network), copy-last-frame and the oracle."""
from __future__ import annotations

import types

import numpy as np
import pytest
import torch
from torch import nn

from agents.costs import GoalImageCost
from agents.models import CopyLastFrameModel, OracleModel, OracleStateCost, PredRNNModel
from agents.mpc import MPCAgent
from agents.planners import CEMOptimizer, PlannerConfig
from mbvc.errors import ConfigError, EnvError, ShapeError

from .conftest import LineEnv

K, C, S, A = 2, 3, 8, 2


class FakePredRNN(nn.Module):
    """Stands in for an action-conditioned PredRNN: ``encode`` / ``rollout`` per the contract."""

    def __init__(self, name: str = "action_cond_predrnn_v2") -> None:
        super().__init__()
        self.config = types.SimpleNamespace(
            name=name, is_action=name.startswith("action"), input_length=K, img_height=S, img_width=S, num_action_ch=A
        )
        self.gain = nn.Parameter(torch.tensor(0.5))
        self.encode_calls: list[tuple[tuple[int, ...], tuple[int, ...] | None]] = []
        self.rollout_sizes: list[int] = []

    def encode(self, context, actions=None):
        self.encode_calls.append((tuple(context.shape), None if actions is None else tuple(actions.shape)))
        bias = 0.0 if actions is None else actions.sum()
        return {"h": context[:, -1] + 0.01 * bias}

    def rollout(self, state, n_future, actions=None):
        self.rollout_sizes.append(actions.shape[0])
        drift = self.gain * actions[:, :n_future].sum(-1).cumsum(1)  # N x H
        return state["h"][:, None] + drift[..., None, None, None]  # raw: may leave [0, 1]


def _context():
    return torch.rand(K, C, S, S, generator=torch.Generator().manual_seed(0))


def test_predrnn_adapter_encodes_once_and_chunks_candidates():
    net = FakePredRNN()
    model = PredRNNModel(net, chunk_size=4)
    assert model.context_length == K and model.image_size == (S, S)
    actions = torch.rand(10, 5, A) * 2 - 1
    fn = model.bind(_context(), torch.zeros(1, K - 1, A))
    out = fn(actions)
    fn(actions)
    assert len(net.encode_calls) == 1 and net.encode_calls[0] == ((1, K, C, S, S), (1, K - 1, A))
    assert net.rollout_sizes == [4, 4, 2, 4, 4, 2]
    assert out.shape == (10, 5, C, S, S) and out.min() >= 0 and out.max() <= 1
    whole = PredRNNModel(FakePredRNN(), chunk_size=None).rollout(_context(), actions, torch.zeros(K - 1, A))
    assert torch.allclose(out, whole)
    single = torch.cat([fn(actions[i : i + 1]) for i in range(10)])
    assert torch.allclose(out, single)


def test_predrnn_adapter_zero_context_actions_by_default():
    net = FakePredRNN()
    PredRNNModel(net).rollout(_context()[None], torch.zeros(3, 2, A))
    assert net.encode_calls[0][1] == (1, K - 1, A)


def test_predrnn_adapter_rejects_bad_models_and_shapes():
    with pytest.raises(ConfigError, match="action-conditioned"):
        PredRNNModel(FakePredRNN("predrnn_v2"))
    with pytest.raises(ConfigError, match="encode"):
        PredRNNModel(nn.Linear(2, 2))
    with pytest.raises(ConfigError, match="chunk_size"):
        PredRNNModel(FakePredRNN(), chunk_size=0)
    model = PredRNNModel(FakePredRNN())
    with pytest.raises(ShapeError, match="context"):
        model.bind(torch.zeros(C, S, S))
    with pytest.raises(ShapeError, match=r"\(N, H, A\)"):
        model.bind(_context())(torch.zeros(4, A))


def test_mpc_with_predrnn_encodes_once_per_plan():
    net = FakePredRNN()
    planner = CEMOptimizer(-1.0, 1.0, num_iterations=3, population_size=12, seed=0)
    agent = MPCAgent(PredRNNModel(net, chunk_size=5), GoalImageCost(), planner, horizon=4, replan_every=2)
    agent.reset(goal=torch.full((C, S, S), 0.5))
    obs = {"image": np.zeros((S, S, C), np.uint8)}
    for _ in range(4):
        agent.act(obs)
    assert len(net.encode_calls) == 2  # two plans for four steps
    assert net.rollout_sizes == [5, 5, 2] * 3 * 2  # per plan: 3 iterations x 3 chunks
    assert len(agent.plan_times) == 2 and len(agent.step_times) == 4


def _tiny_predrnn(name="action_cond_predrnn_v2", input_length=2, conv_on_input=True, size=16):
    models = pytest.importorskip("mbvc.models")
    cfg = models.ModelConfig(name=name, num_hidden=(8, 8), filter_size=3, patch_size=2 if conv_on_input else 4,
                             img_channel=3, img_width=size, input_length=input_length,
                             total_length=input_length + 4, num_action_ch=A, conv_on_input=conv_on_input,
                             res_on_conv=conv_on_input)
    torch.manual_seed(0)
    return models.build_model(cfg)


@pytest.mark.parametrize(
    ("name", "input_length", "conv_on_input"),
    [
        ("action_cond_predrnn", 2, True),
        ("action_cond_predrnn_v2", 2, True),
        ("action_cond_predrnn_v2", 3, False),
    ],
)
def test_adapter_matches_real_predrnn_predict(name, input_length, conv_on_input):
    net = _tiny_predrnn(name, input_length, conv_on_input)
    adapter = PredRNNModel(net, chunk_size=3)
    assert adapter.context_length == input_length and adapter.image_size == (16, 16) and adapter.action_dim == A
    context = torch.rand(1, input_length, 3, 16, 16)
    ctx_actions = torch.rand(1, input_length - 1, A)
    actions = torch.rand(7, 4, A) * 2 - 1
    out = adapter.rollout(context, actions, ctx_actions)
    expected = net.predict(context.expand(7, -1, -1, -1, -1), 4, torch.cat([ctx_actions.expand(7, -1, -1), actions], 1))
    assert out.shape == (7, 4, 3, 16, 16) and out.dtype == torch.float32
    assert torch.allclose(out, expected.clamp(0, 1), atol=1e-5)
    # The actions matter: a different candidate gives a different future.
    assert not torch.allclose(out[0], out[1])
    with pytest.raises(ShapeError, match="input_length"):
        adapter.bind(torch.rand(1, input_length + 1, 3, 16, 16))


def test_adapter_bfloat16_autocast_is_close_to_float32():
    net = _tiny_predrnn()
    context, actions = torch.rand(1, 2, 3, 16, 16), torch.rand(5, 3, A) * 2 - 1
    exact = PredRNNModel(net).rollout(context, actions)
    fast = PredRNNModel(net, autocast=torch.bfloat16).rollout(context, actions)
    assert fast.dtype == torch.float32 and fast.shape == exact.shape
    assert (fast - exact).abs().max() < 0.05
    with pytest.raises(ConfigError, match="autocast"):
        PredRNNModel(net, autocast=torch.int8)


def test_adapter_says_once_beyond_the_trained_horizon(caplog):
    adapter = PredRNNModel(_tiny_predrnn())  # trained for total_length - input_length = 4 steps
    fn = adapter.bind(torch.rand(1, 2, 3, 16, 16))
    with caplog.at_level("INFO", logger="agents.models"):
        fn(torch.zeros(2, 4, A))
        assert not caplog.records
        fn(torch.zeros(2, 8, A))  # up to twice the trained steps: said once, as INFO
        fn(torch.zeros(2, 8, A))
    assert [r.levelname for r in caplog.records] == ["INFO"] and "extrapolation" in caplog.text
    caplog.clear()
    with caplog.at_level("INFO", logger="agents.models"):
        fn(torch.zeros(2, 9, A))  # beyond: a WARNING, once, even after the INFO
        fn(torch.zeros(2, 9, A))
        fn(torch.zeros(2, 8, A))
    assert [r.levelname for r in caplog.records] == ["WARNING"]


@pytest.mark.parametrize("name", ["action_cond_predrnn", "action_cond_predrnn_v2"])
def test_mpc_agent_with_tiny_real_predrnn(name):
    net = _tiny_predrnn(name, input_length=3, size=16)
    encoded = []
    encode = net.encode
    net.encode = lambda context, actions=None: encoded.append((context.shape, actions.shape)) or encode(context, actions)
    space = types.SimpleNamespace(low=-np.ones(A, np.float32), high=np.ones(A, np.float32), shape=(A,))
    cfg = PlannerConfig("icem", num_iterations=2, population_size=16, seed=0)
    agent = MPCAgent(PredRNNModel(net), GoalImageCost(), cfg, horizon=4, action_space=space, record_predictions=True)
    assert agent.context_length == 3 and agent.image_size == (16, 16)
    rng = np.random.default_rng(0)
    agent.reset(goal=rng.integers(0, 256, (32, 32, 3), dtype=np.uint8), seed=0)  # resized to 16 x 16
    assert agent.goal.shape == (3, 16, 16)
    for _ in range(3):
        action = agent.act({"image": rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)})
        assert action.shape == (A,) and action.dtype == np.float32 and np.all(np.abs(action) <= 1)
    assert agent.last_plan.shape == (4, A) and agent.last_prediction.shape == (4, 3, 16, 16)
    assert [e[0] for e in encoded] == [(1, 3, 3, 16, 16)] * 3  # once per plan (the recorded prediction reuses it)
    assert [e[1] for e in encoded] == [(1, 2, A)] * 3


def test_copy_last_frame_model():
    ctx = _context()
    out = CopyLastFrameModel().rollout(ctx, torch.zeros(3, 4, A))
    assert out.shape == (3, 4, C, S, S) and torch.equal(out[2, 3], ctx[-1])


def test_oracle_replays_candidates_from_the_current_state():
    env = LineEnv()
    env.reset(seed=0)
    env.step(np.array([0.5], np.float32))
    before = env.get_state()
    oracle = OracleModel(env, make_env=LineEnv)
    actions = torch.tensor([[[1.0], [1.0]], [[-1.0], [0.0]]])
    frames = oracle.rollout(torch.zeros(1, 3, 8, 32), actions)
    assert env.get_state() == before  # the controlled env is only read
    assert frames.shape == (2, 2, 3, 8, 32)
    for i in range(2):  # same frames as stepping a copy by hand
        copy = LineEnv()
        copy.set_state(before)
        for t in range(2):
            obs, *_ = copy.step(actions[i, t].numpy())
            assert torch.allclose(frames[i, t], torch.as_tensor(obs["image"]).permute(2, 0, 1).float() / 255)
    x, goal = before[0], before[1]
    expected = torch.tensor([[abs(x + 0.25 - goal), abs(x + 0.5 - goal)], [abs(x - 0.25 - goal)] * 2])
    blind = OracleModel(env, make_env=LineEnv, render=False)
    states = blind.rollout(torch.zeros(1, 3, 8, 32), actions)  # the true state instead of pixels
    assert states.shape == (2, 2, 2, 1, 1)
    assert torch.allclose(states[:, :, 0, 0, 0], expected, atol=1e-6)
    assert torch.allclose(OracleStateCost()(states), expected.mean(1), atol=1e-6)
    with pytest.raises(ShapeError, match="OracleStateCost"):
        OracleStateCost()(frames)  # rendered frames are not the true state


def test_oracle_needs_a_way_to_copy_the_env():
    with pytest.raises(EnvError, match="make_env"):
        OracleModel(LineEnv()).rollout(torch.zeros(1, 3, 8, 32), torch.zeros(1, 1, 1))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_mpc_plans_on_the_model_device():
    models = pytest.importorskip("mbvc.models")
    cfg = models.ModelConfig(name="action_cond_predrnn_v2", num_hidden=(8, 8), filter_size=3, patch_size=2,
                             img_channel=3, img_width=16, input_length=2, total_length=6, num_action_ch=A)
    net = models.build_model(cfg).to("cuda")
    planner = CEMOptimizer(-1.0, 1.0, num_iterations=2, population_size=16, seed=0)
    agent = MPCAgent(PredRNNModel(net), GoalImageCost(), planner, horizon=3)
    agent.reset(goal=np.zeros((16, 16, 3), np.uint8))
    action = agent.act({"image": np.zeros((16, 16, 3), np.uint8)})
    assert action.shape == (A,) and agent.last_plan.is_cuda and agent.goal.is_cuda
