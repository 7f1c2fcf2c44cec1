"""mbvc model files and the reference-checkpoint importer."""
from __future__ import annotations

import pytest
import torch

from mbvc.errors import CheckpointError, ConfigError
from mbvc.models import (
    build_model, config_from_reference_flags, export_reference_state_dict, from_reference, load_model, save_model,
)
from tests.models.conftest import NAMES, tiny_config

FLAGS = dict(num_hidden="8,8", filter_size=3, patch_size=2, img_width=16, input_length=3, total_length=6,
             layer_norm=0, num_action_ch=3)


@pytest.mark.parametrize("name", NAMES)
def test_save_load_round_trip(tmp_path, name):
    model = build_model(tiny_config(name))
    path = save_model(model, tmp_path / "m.safetensors")
    loaded = load_model(path)
    assert loaded.config == model.config
    for (k, a), (k2, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(a, b)


def _reference_file(tmp_path, model, **extra):
    """A file in the reference's own format: torch.save({'net_param': state_dict})."""
    path = tmp_path / "model.ckpt-80000"
    torch.save({"net_param": {**export_reference_state_dict(model), **extra}}, path)
    return path


@pytest.mark.parametrize("name", NAMES)
def test_importer_on_reference_key_names(tmp_path, name):
    extra = {"reverse_scheduled_sampling": 1} if "v2" in name or "action" in name else {}
    if name.startswith("action"):  # run.py defaults conv_on_input to 0; the BAIR scripts set 1
        extra.update(conv_on_input=1, res_on_conv=1)
    cfg = config_from_reference_flags(model_name=name, **FLAGS, **extra)
    model = build_model(cfg)
    keys = export_reference_state_dict(model)
    if not name.startswith("action"):  # reference names, e.g. the separate gate convolutions
        assert "cell_list.0.conv_x.0.weight" in keys and "cell_list.1.conv_m.0.weight" in keys
        assert "conv_last.weight" in keys
    else:
        assert "conv_input1.weight" in keys and "deconv_output2.weight" in keys and "cell_list.0.conv_a.0.bias" in keys
    path = _reference_file(tmp_path, model)
    imported = from_reference(path, model_name=name, **FLAGS, **extra, lr=1e-4, batch_size=8)
    frames = torch.rand(1, 6, 1, 16, 16)
    actions = torch.randn(1, 6, 3) if cfg.is_action else None
    model.eval()
    assert torch.allclose(imported.predict(frames[:, :3], 3, actions), model.predict(frames[:, :3], 3, actions))


def test_importer_error_names_keys_and_flag_to_fix(tmp_path):
    model = build_model(config_from_reference_flags(model_name="predrnn_v2", **FLAGS))
    path = _reference_file(tmp_path, model)
    with pytest.raises(CheckpointError) as e:
        from_reference(path, model_name="predrnn", **FLAGS)
    assert "adapter.weight" in str(e.value) and "_v2" in str(e.value)
    with pytest.raises(CheckpointError) as e:
        from_reference(path, model_name="predrnn_v2", **{**FLAGS, "num_hidden": "16,16"})
    assert "shape mismatches" in str(e.value) and "num_hidden=8,8" in str(e.value)
    with pytest.raises(CheckpointError, match="layer_norm=0"):
        from_reference(path, model_name="predrnn_v2", **{**FLAGS, "layer_norm": 1})


def test_unknown_flag_and_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="Did you mean 'num_hidden'"):
        config_from_reference_flags(num_hiden="8,8")
    with pytest.raises(CheckpointError, match="no such"):
        from_reference(tmp_path / "missing", model_name="predrnn", **FLAGS)
    junk = tmp_path / "junk"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk"):
        from_reference(junk, model_name="predrnn", **FLAGS)
    with pytest.raises(CheckpointError, match="mbvc convert"):
        load_model(junk)


def test_malicious_pickle_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.ckpt"
    torch.save({"net_param": Evil()}, path)
    with pytest.raises(CheckpointError, match="weights-only"):
        from_reference(path, model_name="predrnn", **FLAGS)


def test_load_model_mismatch_lists_keys(tmp_path):
    from mbvc.models.checkpoint import load_state_dict_checked

    model = build_model(tiny_config("predrnn"))
    other = build_model(tiny_config("predrnn_v2"))
    with pytest.raises(CheckpointError, match="unexpected keys: adapter.weight"):
        load_state_dict_checked(model, other.state_dict(), "x.safetensors")
