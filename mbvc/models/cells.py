"""Spatiotemporal LSTM cells (PredRNN, PredRNN-V2, action-conditioned).

Both cells return ``(h, c, m, delta_c, delta_m)``; PredRNN simply ignores the increments.
A state passed as ``None`` means "all zeros" (the first step): the cell then skips the
convolutions and products that would only multiply zeros, which gives the same numbers
without allocating zero tensors at every step.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

FORGET_BIAS = 1.0


def _gate_conv(in_ch: int, out_ch: int, k: int, bias: bool, norm_shape: tuple[int, int] | None) -> nn.Sequential:
    """A convolution, optionally followed by LayerNorm over (channels, height, width).

    Wrapped in a Sequential so parameter names match the reference (``conv_x.0.weight``).
    """
    layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, k, stride=1, padding=k // 2, bias=bias)]
    if norm_shape is not None:
        layers.append(nn.LayerNorm([out_ch, *norm_shape]))
    return nn.Sequential(*layers)


def _lstm_update(
    gates_c: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    gates_m: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    c: torch.Tensor | None,
    m: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The two memory updates shared by both cells: returns (c_new, m_new, delta_c, delta_m)."""
    i, f, g = gates_c
    delta_c = torch.sigmoid(i) * torch.tanh(g)
    c_new = delta_c if c is None else torch.sigmoid(f + FORGET_BIAS) * c + delta_c
    ip, fp, gp = gates_m
    delta_m = torch.sigmoid(ip) * torch.tanh(gp)
    m_new = delta_m if m is None else torch.sigmoid(fp + FORGET_BIAS) * m + delta_m
    return c_new, m_new, delta_c, delta_m


class SpatioTemporalCell(nn.Module):
    """The ST-LSTM cell of PredRNN / PredRNN-V2 (convolutions without bias).

    Without layer norm, the sums of convolutions over x, h and m are computed as two
    convolutions over concatenated inputs: ``conv_xh`` on [x, h] gives the i, f, g, o gates
    and ``conv_xm`` on [x, m] gives i', f', g'. Same arithmetic as the reference's four
    convolutions (no zero blocks), fewer kernel launches and additions. With layer norm each
    convolution is normalised separately, so the reference layout (conv_x, conv_h, conv_m) is
    kept and parameter names equal the reference's.

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
        k, hw = filter_size, (height, width)
        if layer_norm:
            self.conv_x = _gate_conv(in_channels, 7 * hidden, k, False, hw)
            self.conv_h = _gate_conv(hidden, 4 * hidden, k, False, hw)
            self.conv_m = _gate_conv(hidden, 3 * hidden, k, False, hw)
            self.conv_o = _gate_conv(2 * hidden, hidden, k, False, hw)
        else:
            self.conv_xh = nn.Conv2d(in_channels + hidden, 4 * hidden, k, padding=k // 2, bias=False)
            self.conv_xm = nn.Conv2d(in_channels + hidden, 3 * hidden, k, padding=k // 2, bias=False)
            self.conv_o = nn.Conv2d(2 * hidden, hidden, k, padding=k // 2, bias=False)
        self.conv_last = nn.Conv2d(2 * hidden, hidden, 1, bias=False)

    def _concat_conv(self, conv: nn.Conv2d, x: torch.Tensor, s: torch.Tensor | None) -> torch.Tensor:
        if s is None:  # zero state: only the x part of the kernel contributes
            return F.conv2d(x, conv.weight[:, : self.in_channels], padding=conv.padding)
        return conv(torch.cat((x, s), dim=1))

    def forward(
        self, x: torch.Tensor, h: torch.Tensor | None, c: torch.Tensor | None, m: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """One step. ``x``: (B, Cin, h, w); states (B, H, h, w) or None for zeros.

        Returns:
            ``(h_new, c_new, m_new, delta_c, delta_m)``, each (B, H, h, w).
        """
        if self.layer_norm:
            zeros = None
            if h is None or m is None:
                zeros = x.new_zeros(x.shape[0], self.hidden, *x.shape[2:])
            ix, fx, gx, ipx, fpx, gpx, ox = self.conv_x(x).chunk(7, dim=1)
            ih, fh, gh, oh = self.conv_h(zeros if h is None else h).chunk(4, dim=1)
            im, fm, gm = self.conv_m(zeros if m is None else m).chunk(3, dim=1)
            gates_c = (ix + ih, fx + fh, gx + gh)
            gates_m = (ipx + im, fpx + fm, gpx + gm)
            o_pre = ox + oh
        else:
            i, f, g, o_pre = self._concat_conv(self.conv_xh, x, h).chunk(4, dim=1)
            gates_c = (i, f, g)
            gates_m = self._concat_conv(self.conv_xm, x, m).chunk(3, dim=1)
        c_new, m_new, delta_c, delta_m = _lstm_update(gates_c, gates_m, c, m)
        mem = torch.cat((c_new, m_new), dim=1)
        o = torch.sigmoid(o_pre + self.conv_o(mem))
        h_new = o * torch.tanh(self.conv_last(mem))
        return h_new, c_new, m_new, delta_c, delta_m


class ActionSpatioTemporalCell(nn.Module):
    """The action-conditioned ST-LSTM cell (biased convolutions, multiplicative fusion).

    The hidden-state gate terms are ``conv_h(h) * conv_a(a)``: the encoded action modulates
    the recurrent transition. Parameter names equal the reference's.

    Args:
        in_channels: channels of the input x.
        hidden: hidden size H.
        action_channels: channels of the encoded action a.
        height, width: spatial size of the states (LayerNorm shape).
        filter_size: kernel k.
        layer_norm: LayerNorm after each gate convolution.
    """

    def __init__(
        self,
        in_channels: int,
        hidden: int,
        action_channels: int,
        height: int,
        width: int,
        filter_size: int,
        layer_norm: bool,
    ):
        super().__init__()
        self.hidden, self.layer_norm = hidden, layer_norm
        k, hw = filter_size, ((height, width) if layer_norm else None)
        self.conv_x = _gate_conv(in_channels, 7 * hidden, k, True, hw)
        self.conv_h = _gate_conv(hidden, 4 * hidden, k, True, hw)
        self.conv_a = _gate_conv(action_channels, 4 * hidden, k, True, hw)
        self.conv_m = _gate_conv(hidden, 3 * hidden, k, True, hw)
        self.conv_o = _gate_conv(2 * hidden, hidden, k, True, hw)
        self.conv_last = nn.Conv2d(2 * hidden, hidden, 1)

    def _conv_state(self, conv: nn.Sequential, s: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
        if s is not None:
            return conv(s)
        if not self.layer_norm:  # conv of zeros is its bias, broadcast over batch and space
            return conv[0].bias.view(1, -1, 1, 1)
        return conv(like.new_zeros(like.shape[0], self.hidden, *like.shape[2:]))

    def forward(
        self,
        x: torch.Tensor,
        h: torch.Tensor | None,
        c: torch.Tensor | None,
        m: torch.Tensor | None,
        a: torch.Tensor | None = None,
        action_term: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """One step. ``x``: (B, Cin, h, w); ``a``: (B, Ca, h, w); states (B, H, h, w) or None.

        ``action_term`` is ``conv_a(a)`` computed by the caller (see
        :meth:`mbvc.models.PredRNN.action_basis`); when given, ``a`` is not used.

        Returns:
            ``(h_new, c_new, m_new, delta_c, delta_m)``, each (B, H, h, w).
        """
        if action_term is None:
            if a is None:
                raise ValueError("ActionSpatioTemporalCell needs the encoded action a or its action_term")
            action_term = self.conv_a(a)
        ix, fx, gx, ipx, fpx, gpx, ox = self.conv_x(x).chunk(7, dim=1)
        ih, fh, gh, oh = (self._conv_state(self.conv_h, h, x) * action_term).chunk(4, dim=1)
        im, fm, gm = self._conv_state(self.conv_m, m, x).chunk(3, dim=1)
        gates_c = (ix + ih, fx + fh, gx + gh)
        gates_m = (ipx + im, fpx + fm, gpx + gm)
        c_new, m_new, delta_c, delta_m = _lstm_update(gates_c, gates_m, c, m)
        mem = torch.cat((c_new, m_new), dim=1)
        o = torch.sigmoid(ox + oh + self.conv_o(mem))
        h_new = o * torch.tanh(self.conv_last(mem))
        return h_new, c_new, m_new, delta_c, delta_m
