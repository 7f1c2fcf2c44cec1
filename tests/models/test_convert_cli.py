"""`mbvc convert` and presets."""
from __future__ import annotations

import pytest
import torch

from mbvc.cli import main
from mbvc.config import model_config_from_preset, preset_names
from mbvc.errors import ConfigError
from mbvc.models import build_model, export_reference_state_dict, load_model

REFERENCE_PRESETS = ["mnist-predrnn", "mnist-predrnn-v2", "kth-predrnn", "kth-predrnn-v2", "bair-predrnn", "bair-predrnn-v2"]


def test_six_reference_presets_exist_with_paper_architectures():
    names = preset_names()
    for n in REFERENCE_PRESETS:
        assert n in names and f"{n}-small" in names
    assert model_config_from_preset("mnist-predrnn-v2").num_hidden == (128,) * 4
    assert model_config_from_preset("bair-predrnn").num_hidden == (64,) * 4
    assert model_config_from_preset("kth-predrnn-v2").decouple_beta == 0.01
    assert model_config_from_preset("kth-predrnn").img_width == 128


def test_preset_errors():
    with pytest.raises(ConfigError, match="Did you mean 'mnist-predrnn-v2'"):
        model_config_from_preset("mnist-predrnn-v3")
    with pytest.raises(ConfigError, match="num_hiden"):
        model_config_from_preset("mnist-predrnn", ["model.num_hiden=[4]"])


def test_convert_round_trip(tmp_path, capsys):
    overrides = ["model.num_hidden=[8,8]", "model.img_width=16"]
    cfg = model_config_from_preset("mnist-predrnn-v2", overrides)
    ref = build_model(cfg)
    ckpt = tmp_path / "model.ckpt-80000"
    torch.save({"net_param": export_reference_state_dict(ref)}, ckpt)
    out = tmp_path / "m.safetensors"
    args = ["convert", str(ckpt), "--preset", "mnist-predrnn-v2", "-o", str(out)]
    for o in overrides:
        args += ["--set", o]
    assert main(args) == 0
    loaded = load_model(out)
    assert loaded.config == cfg
    assert torch.equal(loaded.state_dict()["adapter.weight"], ref.state_dict()["adapter.weight"])


def test_convert_mismatch_is_one_line_error(tmp_path, capsys):
    ref = build_model(model_config_from_preset("mnist-predrnn", ["model.num_hidden=[8,8]", "model.img_width=16"]))
    ckpt = tmp_path / "model.ckpt-1"
    torch.save({"net_param": export_reference_state_dict(ref)}, ckpt)
    code = main(["convert", str(ckpt), "--preset", "mnist-predrnn-v2", "--set", "model.num_hidden=[8,8]",
                 "--set", "model.img_width=16", "-o", str(tmp_path / "x.safetensors")])
    assert code == 2
    err = capsys.readouterr().err
    assert "missing keys: adapter.weight" in err and "model_name without _v2" in err
    assert not (tmp_path / "x.safetensors").exists()


def test_convert_never_overwrites_silently(tmp_path, capsys):
    overrides = ["--set", "model.num_hidden=[8,8]", "--set", "model.img_width=16"]
    ref = build_model(model_config_from_preset("mnist-predrnn-v2", overrides[1::2]))
    ckpt = tmp_path / "model.ckpt-80000"
    torch.save({"net_param": export_reference_state_dict(ref)}, ckpt)
    original = ckpt.read_bytes()
    for extra in ([], ["--overwrite"]):  # the input itself: never
        assert main(["convert", str(ckpt), "--preset", "mnist-predrnn-v2", "-o", str(ckpt), *overrides, *extra]) == 2
        assert "is the input file" in capsys.readouterr().err
    assert ckpt.read_bytes() == original
    out = tmp_path / "m.safetensors"
    out.write_bytes(b"someone's file")
    assert main(["convert", str(ckpt), "--preset", "mnist-predrnn-v2", "-o", str(out), *overrides]) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err and out.read_bytes() == b"someone's file"
    assert main(["convert", str(ckpt), "--preset", "mnist-predrnn-v2", "-o", str(out), *overrides, "--overwrite"]) == 0
    assert load_model(out).config.num_hidden == (8, 8)
    assert main(["convert", str(ckpt), "--preset", "mnist-predrnn-v2", "-o", str(tmp_path), *overrides]) == 2
    assert "is a folder" in capsys.readouterr().err
