"""ConvLSTM (Shi et al., 2015), the baseline of every PredRNN table, optionally action-conditioned.

A stack of convolutional LSTM cells: each layer has its own hidden state h and cell state c,
and no spatiotemporal memory crosses the layers (that memory is what PredRNN adds). The cell
follows OpenSTL's ConvLSTM (no peephole terms, forget-gate bias 1, a 1x1 readout of the top
hidden state), so parameter counts and FLOPs are comparable with its tables.

:class:`ConvLSTM` has the same public interface as :class:`~mbvc.models.PredRNN`
(``forward(frames, mask, actions)``, ``predict``, ``encode`` / ``rollout``, patching, the
curricula's masks, action conditioning); it reuses PredRNN's stepping code, with cells that
pass the (absent) memory through unchanged, so the state it returns has ``m = None``.

The action-conditioned form uses the same multiplicative fusion as the action-conditioned
PredRNN (Oh et al., 2015): ``gates = conv_x(x) + conv_h(h) * conv_a(a)``, with the same
optional strided frame/action encoder (``conv_on_input``) and decoder skips (``res_on_conv``).

Example:
    >>> import torch
    >>> from mbvc.models import ModelConfig, build_model
    >>> cfg = ModelConfig(name="convlstm", num_hidden=(8, 8), patch_size=2, img_width=16,
    ...                   input_length=2, total_length=4, reverse_scheduled_sampling=False)
    >>> build_model(cfg).predict(torch.rand(3, 2, 1, 16, 16), n_future=5).shape
    torch.Size([3, 5, 1, 16, 16])
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mbvc.models.base import register_model_family
from mbvc.models.cells import FORGET_BIAS, _gate_conv
from mbvc.models.config import ModelConfig
from mbvc.models.predrnn import PredRNN


def _lstm(i: torch.Tensor, f: torch.Tensor, g: torch.Tensor, o: torch.Tensor,
          c: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The LSTM update from gate pre-activations: returns (h_new, c_new, delta_c)."""
    delta_c = torch.sigmoid(i) * torch.tanh(g)
    c_new = delta_c if c is None else torch.sigmoid(f + FORGET_BIAS) * c + delta_c
    return torch.sigmoid(o) * torch.tanh(c_new), c_new, delta_c


class ConvLSTMCell(nn.Module):
    """A ConvLSTM cell: ``[i, f, g, o] = conv_x(x) + conv_h(h)`` (convolutions without bias).

    Without layer norm both convolutions are one convolution over ``[x, h]`` (``conv_xh``);
    with layer norm each is normalised separately (``conv_x``, ``conv_h``), as in OpenSTL.
    The call signature matches :class:`~mbvc.models.cells.SpatioTemporalCell` so the PredRNN
    stepping code drives it: the memory ``m`` is passed through unchanged.

    Args:
        in_channels: channels of the input x.
        hidden: hidden size H.
        height, width: spatial size of the states (LayerNorm shape).
        filter_size: kernel k.
        layer_norm: LayerNorm after each gate convolution.
    """

    def __init__(self, in_channels: int, hidden: int, height: int, width: int, filter_size: int, layer_norm: bool):
        super().__init__()
        self.in_channels, self.hidden, self.layer_norm = in_channels, hidden, layer_norm
        k = filter_size
        if layer_norm:
            self.conv_x = _gate_conv(in_channels, 4 * hidden, k, False, (height, width))
            self.conv_h = _gate_conv(hidden, 4 * hidden, k, False, (height, width))
        else:
            self.conv_xh = nn.Conv2d(in_channels + hidden, 4 * hidden, k, padding=k // 2, bias=False)

    def forward(
        self, x: torch.Tensor, h: torch.Tensor | None, c: torch.Tensor | None, m: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor, None]:
        """One step. ``x``: (B, Cin, h, w); states (B, H, h, w) or None for zeros.

        Returns:
            ``(h_new, c_new, m, delta_c, None)``: ``m`` unchanged, no memory increment.
        """
        if self.layer_norm:
            hh = x.new_zeros(x.shape[0], self.hidden, *x.shape[2:]) if h is None else h
            gates = self.conv_x(x) + self.conv_h(hh)
        elif h is None:  # zero state: only the x part of the kernel contributes
            gates = F.conv2d(x, self.conv_xh.weight[:, : self.in_channels], padding=self.conv_xh.padding)
        else:
            gates = self.conv_xh(torch.cat((x, h), dim=1))
        h_new, c_new, delta_c = _lstm(*gates.chunk(4, dim=1), c)
        return h_new, c_new, m, delta_c, None


class ActionConvLSTMCell(nn.Module):
    """The action-conditioned ConvLSTM cell: ``gates = conv_x(x) + conv_h(h) * conv_a(a)``.

    Biased convolutions and names (``conv_x``, ``conv_h``, ``conv_a``) as in
    :class:`~mbvc.models.cells.ActionSpatioTemporalCell`, so
    :meth:`~mbvc.models.PredRNN.action_basis` applies unchanged.

    Args:
        in_channels: channels of the input x.
        hidden: hidden size H.
        action_channels: channels of the encoded action a.
        height, width: spatial size of the states (LayerNorm shape).
        filter_size: kernel k.
        layer_norm: LayerNorm after each gate convolution.
    """

    def __init__(self, in_channels: int, hidden: int, action_channels: int, height: int, width: int,
                 filter_size: int, layer_norm: bool):
        super().__init__()
        self.hidden, self.layer_norm = hidden, layer_norm
        k, hw = filter_size, ((height, width) if layer_norm else None)
        self.conv_x = _gate_conv(in_channels, 4 * hidden, k, True, hw)
        self.conv_h = _gate_conv(hidden, 4 * hidden, k, True, hw)
        self.conv_a = _gate_conv(action_channels, 4 * hidden, k, True, hw)

    def forward(
        self,
        x: torch.Tensor,
        h: torch.Tensor | None,
        c: torch.Tensor | None,
        m: torch.Tensor | None,
        a: torch.Tensor | None = None,
        action_term: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor, None]:
        """One step; ``action_term`` is ``conv_a(a)`` precomputed by the caller (then ``a`` is unused).

        Returns:
            ``(h_new, c_new, m, delta_c, None)``: ``m`` unchanged, no memory increment.
        """
        if action_term is None:
            if a is None:
                raise ValueError("ActionConvLSTMCell needs the encoded action a or its action_term")
            action_term = self.conv_a(a)
        if h is not None:
            state = self.conv_h(h)
        elif not self.layer_norm:  # conv of zeros is its bias
            state = self.conv_h[0].bias.view(1, -1, 1, 1)
        else:
            state = self.conv_h(x.new_zeros(x.shape[0], self.hidden, *x.shape[2:]))
        h_new, c_new, delta_c = _lstm(*(self.conv_x(x) + state * action_term).chunk(4, dim=1), c)
        return h_new, c_new, m, delta_c, None


class ConvLSTM(PredRNN):
    """ConvLSTM / action-conditioned ConvLSTM built from a :class:`ModelConfig`.

    ``config.name`` is ``"convlstm"`` or ``"action_cond_convlstm"``; the other fields mean what
    they mean for PredRNN (``reverse_scheduled_sampling`` picks the input rule and curriculum;
    ``decouple_beta`` is unused). Encoder/decoder layers and their names equal PredRNN's.
    """

    def _make_cell(self, cin: int, hid: int, act_ch: int, h: int, w: int, k: int, ln: bool) -> nn.Module:
        # PredRNN's encoder/decoder and stepping, with ConvLSTM layers (no spatiotemporal memory).
        if self.config.is_action:
            return ActionConvLSTMCell(cin, hid, act_ch, h, w, k, ln)
        return ConvLSTMCell(cin, hid, h, w, k, ln)


for _name in ("convlstm", "action_cond_convlstm"):
    register_model_family(_name, ModelConfig, ConvLSTM)
