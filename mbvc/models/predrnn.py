"""PredRNN, PredRNN-V2 and their action-conditioned forms as one module.

The stack of cells shares one spatiotemporal memory M that zigzags: at every step it goes up
through the layers, and layer 0 reads what the top layer left at the previous step.

Public entry points (frames are (B, T, C, H, W) in [0, 1], actions (B, T, A)):

* ``model(frames, mask, actions)``: training forward with a curriculum mask (the trainer goes
  through the :class:`~mbvc.models.base.WorldModel` training methods of
  :class:`~mbvc.models.curriculum.CurriculumTraining`, which draw the masks);
* ``model.predict(context, n_future, actions)``: test-time generation;
* ``model.encode(context, actions)`` then ``model.rollout(state, n_future, actions)``: encode
  the context once, then roll any number of candidate action sequences from that state.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from mbvc.errors import ConfigError, ShapeError
from mbvc.models.cells import ActionSpatioTemporalCell, SpatioTemporalCell
from mbvc.models.base import WorldModel, register_model_family
from mbvc.models.config import ModelConfig
from mbvc.models.curriculum import CurriculumTraining
from mbvc.models.patch import patchify, unpatchify
from mbvc.models.readout import StateReadout, state_loss, state_targets
from mbvc.models.transforms import blend, make_head

States = tuple["torch.Tensor | None", ...]


class ModelOutput(NamedTuple):
    """What the training forward returns.

    Attributes:
        frames: (B, T-1, C, H, W) predictions of frames 1..T-1 (raw, not clipped).
        loss: scalar, ``mse + decouple_beta * decouple``.
        mse: scalar mean squared error over all outputs (image channels only).
        decouple: scalar memory-decoupling loss (0 for PredRNN).
        increments: per step and layer ``(delta_c, delta_m)`` when asked for, else None.
        state: scalar mean squared error of the state readout (``model.state_targets``) when
            the forward was given ``states``, else None; ``loss`` then includes
            ``state_weight * state``.
    """

    frames: torch.Tensor
    loss: torch.Tensor
    mse: torch.Tensor
    decouple: torch.Tensor
    increments: list[tuple[torch.Tensor, torch.Tensor]] | None = None
    state: torch.Tensor | None = None


class RecurrentState(NamedTuple):
    """The model's state after the context: what :meth:`PredRNN.rollout` continues from.

    Attributes:
        h, c: per-layer hidden and cell states (None means zeros).
        m: the spatiotemporal memory as left by the top layer (None means zeros).
        frame: patched frame that enters the next step, (B, p*p*C, H/p, W/p).
        first: the sequence's first (patched) frame for a non-pixel output's first-frame skip,
            else None.
    """

    h: States
    c: States
    m: torch.Tensor | None
    frame: torch.Tensor
    first: torch.Tensor | None = None

    @property
    def batch_size(self) -> int:
        return self.frame.shape[0]

    def expand(self, n: int) -> RecurrentState:
        """Broadcast a batch-1 state to ``n`` samples without copying memory."""
        if self.batch_size == n:
            return self
        if self.batch_size != 1:
            raise ShapeError(f"cannot broadcast a state of batch {self.batch_size} to {n} samples")

        def ex(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.expand(n, *t.shape[1:])

        return RecurrentState(tuple(map(ex, self.h)), tuple(map(ex, self.c)), ex(self.m), ex(self.frame),
                              ex(self.first))


class PredRNN(CurriculumTraining, WorldModel, nn.Module):
    """PredRNN / PredRNN-V2, optionally action-conditioned, built from a :class:`ModelConfig`.

    Parameter names follow the reference where the layout is the same (``cell_list``,
    ``conv_last``, ``adapter``, ``conv_input1``...). Unconditioned cells without layer norm
    store fused convolutions; :mod:`mbvc.models.reference` maps the reference layout.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = cfg = config
        hid, k, p = cfg.hidden, cfg.filter_size, cfg.patch_size
        pch, ln = cfg.patch_channels, cfg.layer_norm
        ph, pw = cfg.img_height // p, cfg.img_width // p
        if cfg.is_action and cfg.conv_on_input:
            rh, rw = ph // 4, pw // 4  # two stride-2 encoder stages
            self.conv_input1 = nn.Conv2d(pch, hid // 2, k, stride=2, padding=k // 2, bias=False)
            self.conv_input2 = nn.Conv2d(hid // 2, hid, k, stride=2, padding=k // 2, bias=False)
            self.action_conv_input1 = nn.Conv2d(cfg.num_action_ch, hid // 2, k, stride=2, padding=k // 2, bias=False)
            self.action_conv_input2 = nn.Conv2d(hid // 2, hid, k, stride=2, padding=k // 2, bias=False)
            self.deconv_output1 = nn.ConvTranspose2d(hid, hid // 2, k, stride=2, padding=k // 2, bias=False)
            self.deconv_output2 = nn.ConvTranspose2d(hid // 2, pch, k, stride=2, padding=k // 2, bias=False)
            in0, act_ch = hid, hid
        else:
            rh, rw = ph, pw
            # conv_on_input=0: frame and action planes enter layer 0 together, and the raw
            # action planes feed conv_a (the reference's shapes for this path never ran).
            in0 = pch + cfg.num_action_ch if cfg.is_action else pch
            act_ch = cfg.num_action_ch
            self.conv_last = nn.Conv2d(hid, pch, 1, bias=False)
        self.cell_list = nn.ModuleList(
            self._make_cell(in0 if layer == 0 else hid, hid, act_ch, rh, rw, k, ln) for layer in range(cfg.num_layers))
        if cfg.is_v2:
            self.adapter = nn.Conv2d(hid, hid, 1, bias=False)
        # Non-pixel output (mbvc.models.transforms): flow and mask logits from a head beside the
        # pixel decoder, whose parameters keep their names and shapes.
        head = make_head(cfg.output, hid, k, strided=cfg.is_action and cfg.conv_on_input)
        if head is not None:
            self.transform_head = head
        if cfg.state_targets:  # privileged state read from the top hidden state (mbvc.models.readout)
            self.state_readout = StateReadout(hid, len(cfg.state_targets))

    def _make_cell(self, cin: int, hid: int, act_ch: int, h: int, w: int, k: int, ln: bool) -> nn.Module:
        """One recurrent layer (a family with other cells overrides this, see ConvLSTM)."""
        if self.config.is_action:
            return ActionSpatioTemporalCell(cin, hid, act_ch, h, w, k, ln)
        return SpatioTemporalCell(cin, hid, h, w, k, ln)

    # ------------------------------------------------------------------ one step
    def action_basis(self, size: tuple[int, int]) -> torch.Tensor | None:
        """``conv_a`` of the encoded unit actions, for every layer: (A, L, 4H, h, w).

        The action path (action planes -> optional strided encoder -> ``conv_a``) is linear
        in the action vector up to ``conv_a``'s bias, so ``conv_a(enc(a)) = a @ basis + bias``
        exactly (up to float rounding). One small batch of A unit actions per call replaces
        an ``H -> 4H`` convolution per layer and step, as costly as ``conv_h``. Returns None
        where the path is not linear (layer norm) or the model takes no actions.

        Args:
            size: spatial size (h, w) of the patched frames.
        """
        cfg = self.config
        if not cfg.is_action or cfg.layer_norm:
            return None
        weight = self.cell_list[0].conv_a[0].weight
        eye = torch.eye(cfg.num_action_ch, device=weight.device, dtype=weight.dtype)
        enc = eye[:, :, None, None].expand(-1, -1, *size)
        if cfg.conv_on_input:
            enc = self.action_conv_input2(self.action_conv_input1(enc))
        maps = [F.conv2d(enc, cell.conv_a[0].weight, None, padding=cell.conv_a[0].padding) for cell in self.cell_list]
        return torch.stack(maps, dim=1)

    def _action_terms(self, action: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
        """Per layer ``conv_a(enc(action))`` from the basis: (B, L, 4H, h, w) in one matmul."""
        terms = (action @ basis.flatten(1)).view(action.shape[0], *basis.shape[1:])
        bias = torch.stack([cell.conv_a[0].bias for cell in self.cell_list])
        return terms + bias[None, :, :, None, None]

    def _step(
        self,
        frame: torch.Tensor,
        action: torch.Tensor | None,
        h: States,
        c: States,
        m: torch.Tensor | None,
        basis: torch.Tensor | None = None,
        first: torch.Tensor | None = None,
        record: list | None = None,
    ) -> tuple[torch.Tensor, States, States, torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
        """Advance every layer by one step from a patched frame (B, pC, h, w) and an action (B, A).

        ``basis`` is :meth:`action_basis` for this frame size (computed once per sequence).
        ``first`` is the sequence's first frame (non-pixel outputs); ``record``, when given,
        receives the step's ``(flow, masks)`` (non-pixel outputs).
        """
        cfg = self.config
        skips = None
        enc_action = terms = None
        if cfg.is_action:
            planes = action[:, :, None, None].expand(-1, -1, *frame.shape[-2:])
            if cfg.conv_on_input:
                e1 = self.conv_input1(frame)
                net = self.conv_input2(e1)
                skips = (e1, net, frame.shape[-2:])
            else:
                net = torch.cat((frame, planes), dim=1)
            if basis is not None:
                terms = self._action_terms(action, basis)
            elif cfg.conv_on_input:
                enc_action = self.action_conv_input2(self.action_conv_input1(planes))
            else:
                enc_action = planes
        else:
            net = frame
        new_h, new_c, deltas = [], [], []
        for layer, cell in enumerate(self.cell_list):
            if not cfg.is_action:
                hl, cl, m, dc, dm = cell(net, h[layer], c[layer], m)
            else:
                term = None if terms is None else terms[:, layer]
                hl, cl, m, dc, dm = cell(net, h[layer], c[layer], m, enc_action, action_term=term)
            new_h.append(hl)
            new_c.append(cl)
            deltas.append((dc, dm))
            net = hl
        out, extra = self._decode(net, skips)
        if cfg.residual_output:  # the frame it was given plus a change
            out = out + frame
        elif extra is not None:
            out = self._transform(out, extra, frame, first, record)
        return out, tuple(new_h), tuple(new_c), m, deltas

    def _decode(self, top: torch.Tensor, skips: tuple | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The decoder's pixel output and, with a transformation output, the head's channels.

        The head is a sibling of the decoder's last layer (same input, kernel and stride), so both
        run as one convolution over their concatenated weights: one kernel call forward and one
        backward per step instead of two (the head keeps its own parameter names).
        """
        head = getattr(self, "transform_head", None)
        last = self.conv_last if skips is None else self.deconv_output2
        if skips is None:
            features = top
        else:
            e1, e2, out_hw = skips
            inp = top + e2 if self.config.res_on_conv else top
            features = self.deconv_output1(inp, output_size=e1.shape[-2:])
            if self.config.res_on_conv:
                features = features + e1
        if head is None:
            return (last(features) if skips is None else last(features, output_size=out_hw)), None
        out_dim = 0 if skips is None else 1  # Conv2d weights are (out, in, ...), ConvTranspose2d (in, out, ...)
        weight = torch.cat((last.weight, head.weight), dim=out_dim)
        bias = torch.cat((head.bias.new_zeros(last.weight.shape[out_dim]), head.bias))  # the decoder has none
        if skips is None:
            both = F.conv2d(features, weight, bias)
        else:
            k, pad = last.kernel_size[0], last.padding[0]
            out_pad = [o - ((i - 1) * 2 - 2 * pad + k) for o, i in zip(out_hw, features.shape[-2:])]
            both = F.conv_transpose2d(features, weight, bias, stride=2, padding=pad, output_padding=out_pad)
        n = both.shape[1] - head.bias.shape[0]
        return both[:, :n], both[:, n:]

    def _transform(self, generated: torch.Tensor, extra: torch.Tensor, prev: torch.Tensor,
                   first: torch.Tensor | None, record: list | None) -> torch.Tensor:
        """The flow stage: ``m0 * warp(prev, flow) + m1 * first + m2 * generated`` (see transforms)."""
        flow, masks = extra[:, :2], torch.softmax(extra[:, 2:], dim=1)
        if record is not None:
            record.append((flow, masks))
        return blend(prev, prev if first is None else first, generated, flow, masks)

    def _zero_states(self) -> tuple[States, States, None]:
        n = self.config.num_layers
        return (None,) * n, (None,) * n, None

    # ------------------------------------------------------------------ training
    def forward(
        self,
        frames: torch.Tensor,
        mask: torch.Tensor,
        actions: torch.Tensor | None = None,
        return_increments: bool = False,
        states: torch.Tensor | None = None,
    ) -> ModelOutput:
        """Training forward: predict frames 1..T-1, mixing true frames in by ``mask``.

        Args:
            frames: (B, T, C, H, W) in [0, 1].
            mask: (B, steps) with 1 = feed the true frame at that step; steps is T-2 for the
                reverse rule (PredRNN-V2, action models), T-K-1 for scheduled sampling.
            actions: (B, T, A) or (B, T-1, A) for action models; ``actions[:, t]`` is taken
                at frame t.
            return_increments: also return the per-step, per-layer (delta_c, delta_m).
            states: (B, T, S) the data's simulator states; with ``model.state_targets`` the
                readout's error on them joins the loss (ignored without targets).

        Returns:
            :class:`ModelOutput` with predictions (B, T-1, C, H, W) and the loss parts.
        """
        cfg = self.config
        batch, total = self._check_frames(frames, "frames", min_length=2)
        steps = cfg.mask_steps(total)
        if mask.dim() != 2 or mask.shape[0] != batch or mask.shape[1] != steps:
            raise ShapeError(
                f"mask must be (batch, {steps}) for {cfg.name} with T={total} "
                f"({'T-2' if cfg.reverse_input_rule else 'T-K-1'}), got {tuple(mask.shape)}"
            )
        actions = self._check_actions(actions, batch, total - 1)
        x = patchify(frames, cfg.patch_size)
        mask = mask.to(device=x.device, dtype=x.dtype)[:, :, None, None, None]
        h, c, m = self._zero_states()
        preds, increments, readouts = [], [], []
        readout = getattr(self, "state_readout", None) if states is not None else None
        x_gen = x[:, 0]
        basis = self.action_basis(x.shape[-2:])
        for t in range(total - 1):
            j = t - 1 if cfg.reverse_input_rule else t - cfg.input_length
            net = x[:, t] if j < 0 else mask[:, j] * x[:, t] + (1 - mask[:, j]) * x_gen
            a_t = None if actions is None else actions[:, t]
            x_gen, h, c, m, deltas = self._step(net, a_t, h, c, m, basis, first=x[:, 0])
            preds.append(x_gen)
            increments.extend(deltas)
            if readout is not None:
                readouts.append(readout(h[-1]))
        pred = torch.stack(preds, dim=1)
        mse = F.mse_loss(pred, x[:, 1:])
        decouple = self._decoupling_loss(increments) if cfg.is_v2 else mse.new_zeros(())
        loss = mse + cfg.decouple_beta * decouple if cfg.is_v2 else mse
        state = None
        if readout is not None:
            state = state_loss(torch.stack(readouts, dim=1), state_targets(states, cfg.state_targets, batch, total - 1))
            loss = loss + cfg.state_weight * state
        return ModelOutput(
            unpatchify(pred, cfg.patch_size), loss, mse, decouple, increments if return_increments else None, state
        )

    def _decoupling_loss(self, increments: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        """Mean |cos| between adapted delta_c and delta_m, over layers, steps, batch, channels.

        The cosine of channel k is ``(W dc)_k . (W dm)_k / (|(W dc)_k| |(W dm)_k|)`` over the
        pixels, with ``W`` the shared 1x1 adapter. Each of the three dot products equals
        ``diag(W G W^T)`` for a Gram matrix ``G`` of the increments over the pixels (C x C), so
        the adapted increments, as big as the states, are never formed: three batched
        matrix products replace the adapter, two normalisations and their backward (about
        twice as fast on a CPU, same value up to float rounding). Norms are clamped at 1e-12
        as ``F.normalize`` clamps them. Every (layer, step) term averages the same number of
        entries, so the global mean equals the mean of the terms.
        """
        dc = torch.stack([d[0] for d in increments]).flatten(0, 1).flatten(2)  # (n*B, C, h*w)
        dm = torch.stack([d[1] for d in increments]).flatten(0, 1).flatten(2)
        w = self.adapter.weight.flatten(1)  # (C, C)

        def adapted_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            gram = torch.bmm(a, b.transpose(1, 2))  # (n*B, C, C)
            return ((w @ gram) * w).sum(dim=-1)  # (n*B, C)

        eps2 = 1e-24  # (F.normalize's eps)^2: also keeps sqrt's gradient finite at zero
        norm_c = adapted_dot(dc, dc).clamp_min(eps2).sqrt()
        norm_m = adapted_dot(dm, dm).clamp_min(eps2).sqrt()
        return (adapted_dot(dc, dm) / (norm_c * norm_m)).abs().mean()

    # ------------------------------------------------------------------ inference
    def encode(self, context: torch.Tensor, actions: torch.Tensor | None = None) -> RecurrentState:
        """Run the K context frames through the network once.

        Args:
            context: (B, K, C, H, W) true frames.
            actions: (B, >= K-1, A) actions taken at the context frames (action models).

        Returns:
            The state from which :meth:`rollout` predicts frame K onwards.
        """
        batch, k = self._check_frames(context, "context", min_length=1)
        actions = self._check_actions(actions, batch, k - 1, allow_empty=True)
        x = patchify(context, self.config.patch_size)
        h, c, m = self._zero_states()
        basis = self.action_basis(x.shape[-2:]) if k > 1 else None
        for t in range(k - 1):
            _, h, c, m, _ = self._step(x[:, t], None if actions is None else actions[:, t], h, c, m, basis,
                                       first=x[:, 0])
        return RecurrentState(h, c, m, x[:, k - 1], None if self.config.output == "pixels" else x[:, 0])

    def rollout(
        self, state: RecurrentState, n_future: int, actions: torch.Tensor | None = None, transforms: bool = False,
        states: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Predict ``n_future`` frames from an encoded state, feeding predictions back.

        Args:
            state: from :meth:`encode`; a batch-1 state is broadcast to the N action sequences.
            n_future: number of frames to predict.
            actions: (N, >= n_future, A) for action models; ``actions[:, 0]`` is taken at the
                last context frame.
            transforms: also return the predicted transformations (non-pixel outputs only).
            states: also return the state readout's predictions (``model.state_targets``).

        Returns:
            (N, n_future, C, H, W) raw predictions; with ``transforms`` or ``states``, ``(frames,
            extras)`` where extras holds ``"flow"`` (N, n_future, 2, H, W) and ``"masks"`` (N,
            n_future, 3, H, W) for ``transforms`` (flow in pixels, channels (dx, dy), backward:
            content moves by -flow; masks after the softmax, in the order (prev, first,
            generated), :mod:`mbvc.models.transforms`), and ``"states"`` (N, n_future,
            len(state_targets)) for ``states``.
        """
        if n_future < 1:
            raise ShapeError(f"n_future must be >= 1, got {n_future}")
        if transforms and self.config.output == "pixels":
            raise ConfigError(f"rollout(transforms=True) needs a transformation output; {self.config.name} "
                              "has model.output='pixels'")
        readout = getattr(self, "state_readout", None)
        if states and readout is None:
            raise ConfigError(f"rollout(states=True) needs a state readout; this {self.config.name} has no "
                              "model.state_targets")
        n = state.batch_size if actions is None else actions.shape[0]
        actions = self._check_actions(actions, n, n_future)
        state = state.expand(n)
        h, c, m, frame, first = state.h, state.c, state.m, state.frame, state.first
        if self.config.output != "pixels" and first is None:
            raise ShapeError("this state holds no first frame: encode it with a model of the same output")
        preds: list[torch.Tensor] = []
        readouts: list[torch.Tensor] = []
        record: list | None = [] if transforms else None
        basis = self.action_basis(frame.shape[-2:])
        for t in range(n_future):
            frame, h, c, m, _ = self._step(frame, None if actions is None else actions[:, t], h, c, m, basis,
                                           first=first, record=record)
            preds.append(frame)
            if states:
                readouts.append(readout(h[-1]))
        frames = unpatchify(torch.stack(preds, dim=1), self.config.patch_size)
        if record is None and not states:
            return frames
        extras = {} if record is None else {"flow": torch.stack([r[0] for r in record], dim=1),
                                            "masks": torch.stack([r[1] for r in record], dim=1)}
        if states:
            extras["states"] = torch.stack(readouts, dim=1)
        return frames, extras

    @torch.no_grad()
    def predict(self, context: torch.Tensor, n_future: int, actions: torch.Tensor | None = None) -> torch.Tensor:
        """Test-time generation: true frames for the K context steps, own predictions after.

        Args:
            context: (B, K, C, H, W) in [0, 1].
            n_future: frames to predict.
            actions: (B, >= K-1+n_future, A) for action models.

        Returns:
            (B, n_future, C, H, W) raw predictions (clip to [0, 1] for display or metrics).
        """
        k = context.shape[1] if context.dim() == 5 else 0
        if actions is not None and actions.dim() == 3 and actions.shape[1] < k - 1 + n_future:
            raise ShapeError(
                f"actions must cover K-1+n_future = {k - 1 + n_future} steps, got {actions.shape[1]}"
            )
        state = self.encode(context, None if actions is None else actions[:, : k - 1])
        return self.rollout(state, n_future, None if actions is None else actions[:, k - 1 :])

    # ------------------------------------------------------------------ checks
    def _check_frames(self, frames: torch.Tensor, name: str, min_length: int) -> tuple[int, int]:
        cfg = self.config
        if not isinstance(frames, torch.Tensor) or frames.dim() != 5:
            shape = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
            raise ShapeError(f"{name} must be a 5-D tensor (batch, time, channels, height, width), got {shape}")
        if not frames.is_floating_point():
            raise ShapeError(f"{name} must be float in [0, 1], got dtype {frames.dtype} (see mbvc.data.to_float)")
        b, t, ch, hh, ww = frames.shape
        if ch != cfg.img_channel:
            raise ShapeError(f"{name} has {ch} channels, the model expects img_channel={cfg.img_channel}")
        div = cfg.patch_size * (4 if cfg.is_action and cfg.conv_on_input else 1)
        if cfg.layer_norm and (hh, ww) != (cfg.img_height, cfg.img_width):
            raise ShapeError(
                f"{name} frames are {hh}x{ww}; with layer_norm the model needs "
                f"{cfg.img_height}x{cfg.img_width}"
            )
        if hh % div or ww % div:
            raise ShapeError(f"{name} frame size {hh}x{ww} is not divisible by {div} (patch_size={cfg.patch_size})")
        if t < min_length:
            raise ShapeError(f"{name} needs at least {min_length} frames, got {t}")
        return b, t

    def _check_actions(
        self, actions: torch.Tensor | None, batch: int, steps: int, allow_empty: bool = False
    ) -> torch.Tensor | None:
        cfg = self.config
        if not cfg.is_action:
            return None
        if steps == 0 and allow_empty:
            return None
        if actions is None:
            raise ShapeError(f"{cfg.name} is action-conditioned: pass actions of shape (batch, {steps}, {cfg.num_action_ch})")
        if actions.dim() != 3 or actions.shape[0] != batch or actions.shape[2] != cfg.num_action_ch:
            raise ShapeError(
                f"actions must be (batch={batch}, time, {cfg.num_action_ch}), got {tuple(actions.shape)}"
            )
        if actions.shape[1] < steps:
            raise ShapeError(f"actions must cover {steps} steps, got {actions.shape[1]}")
        # Actions are cast to the weights' dtype (float64 parity runs, float32 training).
        return actions.to(dtype=self.conv_last_dtype())

    def conv_last_dtype(self) -> torch.dtype:
        """The floating dtype of the model's parameters."""
        return next(self.parameters()).dtype


# The PredRNN names only: another family sharing ModelConfig registers its own names in its module.
for _name in ("predrnn", "predrnn_v2", "action_cond_predrnn", "action_cond_predrnn_v2"):
    register_model_family(_name, ModelConfig, PredRNN)
