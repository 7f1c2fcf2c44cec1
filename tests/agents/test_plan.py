"""``mbvc plan``: MPC with a tiny trained model on mbvc/Push-v0, resumption, user costs, one-line errors."""
from __future__ import annotations

import json
import sys

import pytest

pytest.importorskip("mujoco")

from mbvc.cli import main

ENV = ["--env", "mbvc/Push-v0", "--env-kwargs", "episode_length=4", "terminate_on_success=true"]
FAST = ["--population", "8", "--iterations", "1", "--horizon", "4", "--replan-every", "2", "--no-progress"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny world model trained by the demo's collect and train stages (seconds)."""
    from agents.demo import DemoRun, demo_settings

    out = tmp_path_factory.mktemp("plan") / "demo"
    DemoRun(demo_settings(tiny=True, overrides=["demo.progress=false"]), out).train()
    return out / "model"


def test_plan_writes_table_json_gif_and_resumes(model_dir, tmp_path, capsys):
    out = tmp_path / "plan"
    assert main(["plan", str(model_dir), *ENV, "--out", str(out), "--episodes", "2", *FAST]) == 0
    table = capsys.readouterr().out
    assert "| MPC, action_cond_predrnn_v2 world model |" in table and "| random actions |" in table and "oracle" in table
    report = json.loads((out / "results.json").read_text())
    assert set(report["results"]) == {"mpc", "random", "oracle"}
    mpc = report["results"]["mpc"]
    assert [e["seed"] for e in mpc["per_episode"]] == [0, 1] and mpc["plan_ms"] > 0
    assert report["settings"]["planner"]["population_size"] == 8 and report["settings"]["cost"]["name"] == "push"
    lines = [json.loads(x) for x in (out / "episodes.jsonl").read_text().splitlines()]
    assert len(lines) == 6 and all({"seed", "success", "final_distance", "steps", "plan_times_ms"} <= set(x) for x in lines)
    assert all(x["plan_times_ms"] for x in lines if x["agent"] == "mpc")
    assert (out / "results.md").read_text().startswith("| agent |")
    from PIL import Image

    assert Image.open(out / "episode.gif").n_frames >= 2
    # a second run with one more episode resumes: only the new seed is played
    assert main(["plan", str(model_dir), *ENV, "--out", str(out), "--seeds", "0,1,2", *FAST]) == 0
    again = [json.loads(x) for x in (out / "episodes.jsonl").read_text().splitlines()]
    assert again[:6] == lines and sorted(x["seed"] for x in again[6:]) == [2, 2, 2]
    resumed = json.loads((out / "results.json").read_text())["results"]["mpc"]["per_episode"]
    assert resumed[:2] == mpc["per_episode"]
    # a folder from an older mbvc, before planner.min_std existed: at its default now, so it still resumes
    marker = json.loads((out / "plan.json").read_text())
    assert marker["settings"]["planner"].pop("min_std") == 1e-3
    (out / "plan.json").write_text(json.dumps(marker))
    assert main(["plan", str(model_dir), *ENV, "--out", str(out), "--seeds", "0,1,2", *FAST]) == 0
    assert (out / "episodes.jsonl").read_text().splitlines() == [json.dumps(x) for x in again]  # nothing replayed
    # other settings in the same folder: refused, naming --force
    assert main(["plan", str(model_dir), *ENV, "--out", str(out), "--episodes", "2", *FAST, "--horizon", "3"]) == 2
    err = capsys.readouterr().err
    assert "--force" in err and "horizon: was" in err and "now 3" in err


def test_plan_with_a_users_cost_by_module_name(model_dir, tmp_path, monkeypatch):
    (tmp_path / "my_costs.py").write_text(
        "CALLS = []\n"
        "def brightness(frames, goal):\n"
        "    CALLS.append(tuple(frames.shape))\n"
        "    return -frames.mean(dim=(1, 2, 3, 4))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "plan"
    assert main(["plan", str(model_dir), *ENV, "--out", str(out), "--episodes", "1", "--agents", "mpc",
                 "--cost", "my_costs:brightness", *FAST]) == 0
    calls = sys.modules["my_costs"].CALLS
    assert calls and calls[0][:2] == (8, 4)  # population x horizon predicted frames
    report = json.loads((out / "results.json").read_text())
    assert set(report["results"]) == {"mpc"} and report["settings"]["cost"]["name"] == "my_costs:brightness"


def _error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [x for x in err.splitlines() if "error:" in x]
    assert len(lines) == 1, err
    return lines[0]


def test_bad_arguments_are_one_line_errors(model_dir, tmp_path, capsys):
    out = str(tmp_path / "plan")
    line = _error(capsys, ["plan", str(model_dir), "--env", "mbvc/Psh-v0", "--out", out])
    assert "mbvc/Psh-v0" in line and "Did you mean 'mbvc/Push-v0'" in line
    line = _error(capsys, ["plan", str(model_dir), *ENV, "--out", out, "--cost", "pushh"])
    assert "unknown cost 'pushh'" in line and "Did you mean 'push'" in line
    line = _error(capsys, ["plan", str(model_dir), *ENV, "--out", out, "--planner", "cemm"])
    assert "cemm" in line and "Did you mean 'cem'" in line
    line = _error(capsys, ["plan", str(model_dir), *ENV, "--out", out, "--cost", "no_such_module:cost"])
    assert "no_such_module" in line
    assert not (tmp_path / "plan").exists()  # nothing was started


def test_a_cost_reading_state_entries_the_model_does_not_predict_is_one_line(model_dir, tmp_path, capsys):
    out = str(tmp_path / "plan")
    line = _error(capsys, ["plan", str(model_dir), *ENV, "--out", out, "--set", "cost.block_entries=[5,6]"])
    assert "cost.block_entries=[5, 6] indexes the model's 4 predicted entries (model.state_targets=[0, 1, 4, 5])" in line
    assert not (tmp_path / "plan").exists()


def test_a_model_with_another_action_size_is_refused(model_dir, tmp_path, capsys):
    from mbvc.models import build_model
    from mbvc.models.checkpoint import save_model
    from mbvc.training.artifacts import load_trained

    other = build_model(load_trained(model_dir).model.config.replace(num_action_ch=3))
    path = save_model(other, tmp_path / "three.safetensors")
    line = _error(capsys, ["plan", str(path), *ENV, "--out", str(tmp_path / "plan"), "--cost", "goal_image"])
    assert "3-dimensional actions" in line and "mbvc/Push-v0" in line


def test_frames_of_model_and_env_must_agree(model_dir, tmp_path, capsys):
    out = str(tmp_path / "plan")
    line = _error(capsys, ["plan", str(model_dir), *ENV, "camera=bair+side", "--out", out])
    assert "16x16 frames" in line and "observes 16x32" in line
    assert not (tmp_path / "plan").exists()


def test_a_model_without_actions_is_refused_by_name(tmp_path, capsys):
    from mbvc.config import model_config_from_preset
    from mbvc.models import build_model
    from mbvc.models.checkpoint import save_model

    config = model_config_from_preset("mnist-predrnn-v2-small", ["model.num_hidden=[4]", "model.img_width=16",
                                                                 "model.img_channel=3", "model.patch_size=4"])
    path = save_model(build_model(config), tmp_path / "video.safetensors")
    line = _error(capsys, ["plan", str(path), *ENV, "--out", str(tmp_path / "plan"), "--cost", "goal_image"])
    assert "not action-conditioned" in line and "predrnn_v2" in line


def test_plan_sees_a_state_based_gymnasium_env_through_the_pixel_wrapper(model_dir, tmp_path, monkeypatch):
    """Reacher (2 actions, like the model) renders its frames; it has no get_state, so no oracle."""
    import gymnasium as gym

    if "Reacher-v5" not in gym.envs.registry:
        pytest.skip("gymnasium's MuJoCo envs are not registered")
    (tmp_path / "dark.py").write_text("def cost(frames, goal):\n    return frames.mean(dim=(1, 2, 3, 4))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "reacher"
    assert main(["plan", str(model_dir), "--env", "Reacher-v5", "--env-kwargs", "max_episode_steps=3",
                 "--cost", "dark:cost", "--out", str(out), "--episodes", "1", *FAST]) == 0
    report = json.loads((out / "results.json").read_text())
    assert set(report["results"]) == {"mpc", "random"}
    assert report["results"]["mpc"]["per_episode"][0]["steps"] == 3
