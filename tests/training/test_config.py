"""Presets: every one loads, the reference ones carry the reference scripts' values, errors name file and key."""
from __future__ import annotations

import pytest
import yaml

from mbvc.config import RunConfig, load_run_config, preset_names
from mbvc.errors import ConfigError
from mbvc.training.config import TrainConfig

REFERENCE = {  # preset: (lr, batch, iterations, beta, eval context, eval horizon)
    "mnist-predrnn": (3e-4, 8, 80000, None, 10, 10),
    "mnist-predrnn-v2": (1e-4, 8, 80000, 0.1, 10, 10),
    "kth-predrnn": (3e-4, 4, 80000, None, 10, 20),
    "kth-predrnn-v2": (1e-4, 4, 80000, 0.01, 10, 20),
    "bair-predrnn": (1e-4, 16, 80000, None, 2, 28),
    "bair-predrnn-v2": (1e-4, 16, 80000, 0.1, 2, 28),
}


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_loads_and_round_trips(name, tmp_path):
    cfg = load_run_config(name)
    path = tmp_path / "config.yaml"
    path.write_text(cfg.to_yaml())
    again = load_run_config(path)
    assert again.to_dict() == cfg.to_dict()
    assert cfg.data.seq_len == cfg.model.total_length
    assert cfg.data_for("val").eval_seq_len == cfg.eval.context + cfg.eval.horizon


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_reference_presets_reproduce_the_scripts(name):
    lr, batch, iters, beta, context, horizon = REFERENCE[name]
    cfg = load_run_config(name)
    t = cfg.train
    assert (t.lr, t.batch_size, t.iterations) == (lr, batch, iters)
    assert (t.eval_interval, t.checkpoint_interval) == (5000, 5000)
    assert (cfg.eval.context, cfg.eval.horizon) == (context, horizon)
    if beta is not None:
        assert cfg.model.decouple_beta == beta
    # reverse_input 1 in every script, except that action data is never time-reversed
    assert t.reverse_input is (not cfg.model.is_action)
    cur = t.curriculum
    if cfg.model.reverse_input_rule:
        s1, alpha = (5000, 2000) if name == "kth-predrnn-v2" else (25000, 2500)
        assert (cur.r_sampling_step_1, cur.r_sampling_step_2, cur.r_exp_alpha) == (s1, 50000, alpha)
    else:
        assert (cur.sampling_stop_iter, cur.sampling_changing_rate, cur.sampling_start_value) == (50000, 2e-5, 1.0)


def test_overrides_reach_every_section():
    cfg = load_run_config("kth-predrnn-small", ["train.lr=5e-4", "train.curriculum.sampling_stop_iter=7",
                                                "data.root=/somewhere", "eval.horizon=5", "model.num_hidden=[8,8]"])
    assert cfg.train.lr == 5e-4 and cfg.train.curriculum.sampling_stop_iter == 7
    assert cfg.data.root == "/somewhere" and cfg.eval.horizon == 5 and cfg.model.num_hidden == (8, 8)
    # the data window follows the model through the preset's interpolation
    assert load_run_config("mnist-predrnn-small", ["model.total_length=12"]).data.seq_len == 12


@pytest.mark.parametrize("override, words", [
    (["train.lrr=1"], ["mnist-predrnn-v2-small.yaml", "train.lrr", "Did you mean 'lr'"]),
    (["train.curriculum.r_sampling_step_9=1"], ["train.curriculum.r_sampling_step_9"]),
    (["train.lr=fast"], ["train.lr", "fast"]),
    (["data.nam=x"], ["data", "'nam'", "Did you mean 'name'"]),
    (["model.num_hiden=[4]"], ["model", "'num_hiden'"]),
    (["optim.lr=1"], ["unknown section 'optim'"]),
    (["train.optimizer=sgd"], ["train.optimizer", "'sgd'"]),
    (["eval.horizon=0"], ["horizon"]),
    (["train.lr"], ["section.key=value"]),
])
def test_bad_settings_name_the_file_and_key(override, words):
    with pytest.raises(ConfigError) as e:
        load_run_config("mnist-predrnn-v2-small", override)
    for w in words:
        assert w in str(e.value)


def test_unknown_preset_suggests_a_name():
    with pytest.raises(ConfigError, match="Did you mean 'mnist-predrnn'"):
        load_run_config("mnist-predrn")


def test_short_training_window_is_rejected():
    with pytest.raises(ConfigError, match="data.seq_len=10 is shorter than model.total_length=20"):
        load_run_config("mnist-predrnn-small", ["data.seq_len=10"])


def test_lr_schedules():
    base = dict(iterations=100, warmup_iters=10, min_lr_ratio=0.1)
    cos = TrainConfig(lr_schedule="cosine", **base)
    assert cos.lr_factor(0) == pytest.approx(0.1) and cos.lr_factor(9) == pytest.approx(1.0)
    assert cos.lr_factor(10) == pytest.approx(1.0) and cos.lr_factor(100) == pytest.approx(0.1)
    assert TrainConfig(lr_schedule="linear", **base).lr_factor(55) == pytest.approx(0.55)
    assert TrainConfig().lr_factor(12345) == 1.0


def test_run_config_is_frozen():
    cfg = load_run_config("mnist-predrnn-small")
    assert isinstance(cfg, RunConfig)
    with pytest.raises(Exception):
        cfg.train.lr = 1.0  # type: ignore[misc]


@pytest.mark.parametrize("name", [n for n in preset_names() if n.startswith(("kth-", "bair-"))])
def test_kth_and_bair_evaluate_as_the_paper_whatever_the_training_length(name):
    context, horizon = (10, 20) if name.startswith("kth-") else (2, 28)
    for over in ([], ["model.total_length=12"]):
        cfg = load_run_config(name, over)
        assert (cfg.eval.context, cfg.eval.horizon) == (context, horizon)
        assert cfg.data_for("train").seq_len == cfg.model.total_length < context + horizon
        for split in ("val", "test"):  # 30-frame evaluation windows, independent of the training window
            assert cfg.data_for(split).eval_seq_len == context + horizon == 30


def test_a_run_config_written_before_the_options_were_removed_still_loads(tmp_path, caplog):
    """``config.yaml`` of an older run: retired keys at their "off" value are dropped silently, a
    train key in use is dropped with a warning, a model key of another architecture is refused in one line."""
    old = load_run_config("mnist-predrnn-v2-small").to_dict()
    old["model"].update(views=1, encoder_downsample=4)
    old["train"].update(motion_weight=0.0, l1_weight=0.0, time_limit_min=None)
    old["data"].update(root="", train_paths=[], cache_dir="", image_key="image_aux1", kth_source="auto",
                       grey=False, array_key="", skip_short=False)  # one flat class for every dataset
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(old))
    assert load_run_config(path).to_dict() == load_run_config("mnist-predrnn-v2-small").to_dict()
    assert not caplog.records
    old["train"].update(time_limit_min=0.75, motion_weight=100.0)
    path.write_text(yaml.safe_dump(old))
    with caplog.at_level("WARNING"):
        assert load_run_config(path).train == load_run_config("mnist-predrnn-v2-small").train
    assert "train.motion_weight=100.0 is ignored" in caplog.text and "train.time_limit_min=0.75" in caplog.text
    old["model"]["views"] = 2
    path.write_text(yaml.safe_dump(old))
    with pytest.raises(ConfigError, match=r"config.yaml: model: model.views=2 is no longer supported") as e:
        load_run_config(path)
    assert "\n" not in str(e.value)


def test_a_list_element_of_the_wrong_type_names_its_key():
    """OmegaConf refuses ``[2, True]`` for a ``tuple[int, ...]`` without naming the key; mbvc names it."""
    import dataclasses

    from mbvc.config import section_config

    @dataclasses.dataclass(frozen=True)
    class Section:
        entries: tuple[int, ...] = (0, 1)
        weight: float = 1.0

    with pytest.raises(ConfigError, match=r"file.yaml: s.entries: expected tuple\[int, \.\.\.\], got \[2, True\]") as e:
        section_config(Section, {"s": {"weight": 2.0, "entries": [2, True]}}, "s", "file.yaml")
    assert "$VALUE" not in str(e.value) and "\n" not in str(e.value)
    assert section_config(Section, {"s": {"entries": [2, 3]}}, "s", "file.yaml").entries == (2, 3)
