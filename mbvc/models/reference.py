"""Import (and export) checkpoints of the authors' reference release.

A reference checkpoint is ``torch.save({'net_param': state_dict}, 'model.ckpt-<itr>')`` and
holds no config, so the user passes the flags of the ``run.py`` call that trained it:

>>> model = from_reference("model.ckpt-80000", model_name="predrnn_v2",
...                        num_hidden="128,128,128,128", patch_size=4)  # doctest: +SKIP

Unconditioned cells without layer norm are stored fused in mbvc (``conv_xh``, ``conv_xm``);
this module maps the reference's ``conv_x``/``conv_h``/``conv_m`` onto them and back.
Every other parameter has the reference's name and shape.
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from mbvc.errors import CheckpointError, ConfigError, did_you_mean
from mbvc.models.checkpoint import describe_mismatch
from mbvc.models.config import ModelConfig

# run.py flags that shape the network, with their mbvc field names.
ARCH_FLAGS = {
    "model_name": "name",
    "num_hidden": "num_hidden",
    "filter_size": "filter_size",
    "stride": "stride",
    "patch_size": "patch_size",
    "img_channel": "img_channel",
    "img_width": "img_width",
    "layer_norm": "layer_norm",
    "input_length": "input_length",
    "total_length": "total_length",
    "reverse_scheduled_sampling": "reverse_scheduled_sampling",
    "decouple_beta": "decouple_beta",
    "conv_on_input": "conv_on_input",
    "res_on_conv": "res_on_conv",
    "num_action_ch": "num_action_ch",
}
# run.py flags accepted (so a whole script's flags can be pasted) but irrelevant to the weights.
OTHER_FLAGS = {
    "is_training", "device", "dataset_name", "train_data_paths", "valid_data_paths", "save_dir",
    "gen_frm_dir", "pretrained_model", "lr", "reverse_input", "batch_size", "max_iterations",
    "display_interval", "test_interval", "snapshot_interval", "num_save_samples", "n_gpu",
    "visual", "visual_path", "scheduled_sampling", "sampling_stop_iter", "sampling_start_value",
    "sampling_changing_rate", "r_sampling_step_1", "r_sampling_step_2", "r_exp_alpha",
    "injection_action",
}
BOOL_FLAGS = {"layer_norm", "reverse_scheduled_sampling", "conv_on_input", "res_on_conv"}


def config_from_reference_flags(**flags: Any) -> ModelConfig:
    """Translate reference ``run.py`` flags into a :class:`ModelConfig`.

    Unset flags take run.py's defaults where they differ from mbvc's (e.g. layer_norm=1,
    reverse_scheduled_sampling=0, conv_on_input=0 in run.py).
    """
    unknown = [k for k in flags if k not in ARCH_FLAGS and k not in OTHER_FLAGS]
    if unknown:
        raise ConfigError(
            f"unknown reference flag {unknown[0]!r}." + did_you_mean(unknown[0], [*ARCH_FLAGS, *OTHER_FLAGS])
        )
    # run.py's own defaults, so that omitted flags mean what they meant there.
    values: dict[str, Any] = {
        "model_name": "predrnn", "num_hidden": "64,64,64,64", "filter_size": 5, "stride": 1,
        "patch_size": 4, "img_channel": 1, "img_width": 64, "layer_norm": 1, "input_length": 10,
        "total_length": 20, "reverse_scheduled_sampling": 0, "decouple_beta": 0.1,
        "conv_on_input": 0, "res_on_conv": 0, "num_action_ch": 4,
    }
    values.update({k: v for k, v in flags.items() if k in ARCH_FLAGS})
    kwargs = {ARCH_FLAGS[k]: (bool(int(v)) if k in BOOL_FLAGS else v) for k, v in values.items()}
    if str(kwargs["name"]).startswith("action_cond"):
        kwargs["reverse_scheduled_sampling"] = True  # the action models always use that rule
    for key in ("filter_size", "stride", "patch_size", "img_channel", "img_width", "input_length", "total_length", "num_action_ch"):
        kwargs[key] = int(kwargs[key])
    kwargs["decouple_beta"] = float(kwargs["decouple_beta"])
    return ModelConfig.from_dict(kwargs)


def _is_fused(config: ModelConfig) -> bool:
    return not config.is_action and not config.layer_norm


def import_reference_state_dict(state: Mapping[str, torch.Tensor], config: ModelConfig) -> dict[str, torch.Tensor]:
    """Map a reference state dict onto mbvc's parameter layout (no shape checks)."""
    out: dict[str, torch.Tensor] = {}
    fused = _is_fused(config)
    for key, value in state.items():
        if fused and re.match(r"cell_list\.\d+\.conv_(x|h|m)\.0\.weight$", key):
            continue  # handled below
        if fused:
            key = re.sub(r"(cell_list\.\d+\.conv_o)\.0\.weight$", r"\1.weight", key)
        out[key] = value
    if fused:
        h = config.hidden
        for layer in range(config.num_layers):
            p = f"cell_list.{layer}."
            wx, wh, wm = (state[p + f"conv_{n}.0.weight"] for n in "xhm")
            x_c = torch.cat((wx[: 3 * h], wx[6 * h :]))  # i, f, g, o rows
            x_m = wx[3 * h : 6 * h]  # i', f', g' rows
            out[p + "conv_xh.weight"] = torch.cat((x_c, wh), dim=1)
            out[p + "conv_xm.weight"] = torch.cat((x_m, wm), dim=1)
    return out


def export_reference_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's weights in the reference layout (inverse of :func:`import_reference_state_dict`)."""
    config: ModelConfig = model.config
    if config.residual_output:
        raise CheckpointError("a model with residual_output=True has no reference counterpart (the reference "
                              "predicts frames, not changes): it cannot be exported")
    if config.output != "pixels":
        raise CheckpointError(f"a model with output={config.output!r} has no reference counterpart (the reference "
                              "decodes pixels, not transformations): it cannot be exported")
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if not _is_fused(config):
        return state
    out: dict[str, torch.Tensor] = {}
    h = config.hidden
    for key, value in state.items():
        m = re.match(r"(cell_list\.(\d+)\.)conv_(xh|xm|o)\.weight$", key)
        if not m:
            out[key] = value
            continue
        prefix, layer, name = m.group(1), int(m.group(2)), m.group(3)
        if name == "o":
            out[prefix + "conv_o.0.weight"] = value
        elif name == "xh":
            cin = value.shape[1] - h
            wxh, wxm = value, state[prefix + "conv_xm.weight"]
            out[prefix + "conv_x.0.weight"] = torch.cat((wxh[: 3 * h, :cin], wxm[:, :cin], wxh[3 * h :, :cin]))
            out[prefix + "conv_h.0.weight"] = wxh[:, cin:].clone()
            out[prefix + "conv_m.0.weight"] = wxm[:, cin:].clone()
        del layer
    return out


def reference_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Keys and shapes a reference checkpoint of this architecture holds."""
    from mbvc.models import build_model

    with torch.device("meta"):
        model = build_model(config)
    return {k: tuple(v.shape) for k, v in export_reference_state_dict(model).items()}


def read_reference_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Load a reference checkpoint safely (``weights_only=True``) and return its state dict."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for corrupt or unsafe files
        raise CheckpointError(f"{path}: cannot be read as a weights-only torch checkpoint: {e}") from None
    if isinstance(obj, Mapping) and "net_param" in obj:
        obj = obj["net_param"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: expected {{'net_param': state_dict}} or a state dict of tensors")
    return dict(obj)


def _hints(config: ModelConfig, found: Mapping[str, tuple]) -> list[str]:
    """Guess which reference flag to fix from the keys and shapes of the file."""
    hints = []
    keys = set(found)
    has_ln = any(re.search(r"\.conv_\w\.1\.weight$", k) for k in keys)
    if has_ln != config.layer_norm:
        hints.append(f"layer_norm={int(has_ln)}")
    if ("adapter.weight" in keys) != config.is_v2:
        hints.append("model_name with _v2" if "adapter.weight" in keys else "model_name without _v2")
    if any(".conv_a." in k for k in keys) != config.is_action:
        hints.append("model_name action_cond_*" if not config.is_action else "model_name predrnn / predrnn_v2")
    if config.is_action and ("conv_input1.weight" in keys) != config.conv_on_input:
        hints.append(f"conv_on_input={int('conv_input1.weight' in keys)}")
    layers = {int(m.group(1)) for k in keys if (m := re.match(r"cell_list\.(\d+)\.", k))}
    if layers and max(layers) + 1 != config.num_layers:
        hints.append(f"num_hidden with {max(layers) + 1} layers")
    wx = found.get("cell_list.0.conv_x.0.weight")
    if wx is not None:
        hid, cin, k = wx[0] // 7, wx[1], wx[-1]
        if hid != config.hidden:
            hints.append(f"num_hidden={','.join([str(hid)] * max(1, len(layers)))}")
        if k != config.filter_size:
            hints.append(f"filter_size={k}")
        if not config.is_action and cin != config.patch_channels:
            hints.append(f"patch_size and img_channel with patch_size**2 * img_channel = {cin}")
    return hints


def from_reference(checkpoint_path: str | os.PathLike, **flags: Any) -> torch.nn.Module:
    """Build the mbvc model matching a reference run and load the reference checkpoint into it.

    Args:
        checkpoint_path: a reference ``model.ckpt-<itr>`` file.
        **flags: the reference ``run.py`` flags of that run (``model_name``, ``num_hidden``
            as ``"128,128,128,128"``, ``patch_size``...); non-architectural flags are accepted
            and ignored.

    Returns:
        A :class:`~mbvc.models.PredRNN` with the checkpoint's weights, in eval mode.
    """
    from mbvc.models import build_model

    config = config_from_reference_flags(**flags)
    if config.is_action and not config.conv_on_input:
        raise CheckpointError(
            "reference action models with conv_on_input=0 never ran (their layer shapes do not fit), "
            "so their checkpoints cannot be imported; mbvc trains that setting itself"
        )
    state = read_reference_checkpoint(checkpoint_path)
    if not config.is_v2 and "adapter.weight" in state and config.is_action:
        state.pop("adapter.weight")  # some v1 action checkpoints carry an unused adapter
    found = {k: tuple(v.shape) for k, v in state.items()}
    problems = describe_mismatch(reference_shapes(config), found)
    if problems:
        hints = _hints(config, found)
        hint = f"\n  check the reference flags: {'; '.join(hints)}" if hints else ""
        raise CheckpointError(f"{checkpoint_path} does not match model {config.name} built from the given flags:\n{problems}{hint}")
    model = build_model(config)
    mapped = import_reference_state_dict(state, config)
    with torch.no_grad():
        model.load_state_dict({k: v.to(torch.get_default_dtype()) for k, v in mapped.items()}, strict=True)
    return model.eval()
