"""A plain PredRNN-family implementation written the way the reference release is written.

Used two ways:
* as the parity oracle of the tests (it uses the reference's parameter names, so a reference
  state dict loads into it unchanged, and mbvc must reproduce its outputs);
* as the baseline of ``benchmarks/speed.py``: separate convolutions per gate group, states
  kept in per-step Python lists, zero states allocated on the host and copied to the device at
  every forward, numpy masks expanded to full frames, frames in (B, T, H, W, C) patched in
  numpy, ``torch.FloatTensor`` conversions at every iteration.

Written from docs/reference-spec.md; it is not the authors' code.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def np_reshape_patch(img: np.ndarray, p: int) -> np.ndarray:
    """(B, T, H, W, C) -> (B, T, H/p, W/p, p*p*C) with the reference channel order."""
    b, t, h, w, c = img.shape
    a = img.reshape(b, t, h // p, p, w // p, p, c).transpose(0, 1, 2, 4, 3, 5, 6)
    return a.reshape(b, t, h // p, w // p, p * p * c)


def np_reshape_patch_back(patches: np.ndarray, p: int) -> np.ndarray:
    """Inverse of :func:`np_reshape_patch`."""
    b, t, hp, wp, pc = patches.shape
    c = pc // (p * p)
    a = patches.reshape(b, t, hp, wp, p, p, c).transpose(0, 1, 2, 4, 3, 5, 6)
    return a.reshape(b, t, hp * p, wp * p, c)


def _seq(cin, cout, k, bias, ln, width):
    layers = [nn.Conv2d(cin, cout, k, stride=1, padding=k // 2, bias=bias)]
    if ln:
        layers.append(nn.LayerNorm([cout, width, width]))
    return nn.Sequential(*layers)


class RefCell(nn.Module):
    def __init__(self, cin, hid, width, k, ln, action=False, action_ch=None):
        super().__init__()
        self.hid, self.action = hid, action
        self.conv_x = _seq(cin, 7 * hid, k, action, ln, width)
        self.conv_h = _seq(hid, 4 * hid, k, action, ln, width)
        if action:
            self.conv_a = _seq(action_ch, 4 * hid, k, action, ln, width)
        self.conv_m = _seq(hid, 3 * hid, k, action, ln, width)
        self.conv_o = _seq(2 * hid, hid, k, action, ln, width)
        self.conv_last = nn.Conv2d(2 * hid, hid, 1, bias=action)

    def forward(self, x_t, h_t, c_t, m_t, a_t=None):
        x_concat = self.conv_x(x_t)
        h_concat = self.conv_h(h_t)
        if self.action:
            h_concat = h_concat * self.conv_a(a_t)
        m_concat = self.conv_m(m_t)
        i_x, f_x, g_x, i_xp, f_xp, g_xp, o_x = torch.split(x_concat, self.hid, dim=1)
        i_h, f_h, g_h, o_h = torch.split(h_concat, self.hid, dim=1)
        i_m, f_m, g_m = torch.split(m_concat, self.hid, dim=1)
        i_t = torch.sigmoid(i_x + i_h)
        f_t = torch.sigmoid(f_x + f_h + 1.0)
        g_t = torch.tanh(g_x + g_h)
        delta_c = i_t * g_t
        c_new = f_t * c_t + delta_c
        i_tp = torch.sigmoid(i_xp + i_m)
        f_tp = torch.sigmoid(f_xp + f_m + 1.0)
        g_tp = torch.tanh(g_xp + g_m)
        delta_m = i_tp * g_tp
        m_new = f_tp * m_t + delta_m
        mem = torch.cat((c_new, m_new), 1)
        o_t = torch.sigmoid(o_x + o_h + self.conv_o(mem))
        h_new = o_t * torch.tanh(self.conv_last(mem))
        return h_new, c_new, m_new, delta_c, delta_m


class RefRNN(nn.Module):
    """Reference-style network. Inputs (B, T, H/p, W/p, p*p*C [+A]) patched, masks full-frame."""

    def __init__(self, name, num_hidden, patch_size, img_channel, img_width, filter_size=5,
                 layer_norm=False, input_length=10, total_length=20, reverse_scheduled_sampling=False,
                 decouple_beta=0.1, conv_on_input=True, res_on_conv=True, num_action_ch=4, device="cpu"):
        super().__init__()
        self.name, self.num_hidden, self.L = name, list(num_hidden), len(num_hidden)
        self.action, self.v2 = name.startswith("action"), name.endswith("_v2")
        self.K, self.T, self.rss = input_length, total_length, reverse_scheduled_sampling or self.action
        self.beta, self.conv_on_input, self.res_on_conv = decouple_beta, conv_on_input, res_on_conv
        self.patch_ch = img_channel * patch_size**2
        self.device = device
        hid, k = num_hidden[0], filter_size
        width = img_width // patch_size
        if self.action and conv_on_input:
            width //= 4
            self.conv_input1 = nn.Conv2d(self.patch_ch, hid // 2, k, stride=2, padding=k // 2, bias=False)
            self.conv_input2 = nn.Conv2d(hid // 2, hid, k, stride=2, padding=k // 2, bias=False)
            self.action_conv_input1 = nn.Conv2d(num_action_ch, hid // 2, k, stride=2, padding=k // 2, bias=False)
            self.action_conv_input2 = nn.Conv2d(hid // 2, hid, k, stride=2, padding=k // 2, bias=False)
            self.deconv_output1 = nn.ConvTranspose2d(hid, hid // 2, k, stride=2, padding=k // 2, bias=False)
            self.deconv_output2 = nn.ConvTranspose2d(hid // 2, self.patch_ch, k, stride=2, padding=k // 2, bias=False)
        else:
            self.conv_last = nn.Conv2d(hid, self.patch_ch, 1, bias=False)
        self.width = width
        cells = []
        for i in range(self.L):
            if i == 0:
                cin = hid if (self.action and conv_on_input) else self.patch_ch + (num_action_ch if self.action else 0)
            else:
                cin = num_hidden[i - 1]
            a_ch = hid if conv_on_input else num_action_ch
            cells.append(RefCell(cin, num_hidden[i], width, k, layer_norm, self.action, a_ch))
        self.cell_list = nn.ModuleList(cells)
        if self.v2:
            self.adapter = nn.Conv2d(hid, hid, 1, bias=False)

    def forward(self, frames_tensor, mask_true):
        frames = frames_tensor.permute(0, 1, 4, 2, 3).contiguous()
        mask_true = mask_true.permute(0, 1, 4, 2, 3).contiguous()
        if self.action:
            input_frames, input_actions = frames[:, :, : self.patch_ch], frames[:, :, self.patch_ch :]
        else:
            input_frames, input_actions = frames, None
        batch = frames.shape[0]
        h_t, c_t, next_frames, decouple = [], [], [], []
        for i in range(self.L):
            zeros = torch.zeros([batch, self.num_hidden[i], self.width, self.width], dtype=frames.dtype).to(self.device)
            h_t.append(zeros)
            c_t.append(zeros)
        memory = torch.zeros([batch, self.num_hidden[0], self.width, self.width], dtype=frames.dtype).to(self.device)
        x_gen = None
        for t in range(self.T - 1):
            if self.rss:
                net = input_frames[:, t] if t == 0 else mask_true[:, t - 1] * input_frames[:, t] + (1 - mask_true[:, t - 1]) * x_gen
            elif t < self.K:
                net = input_frames[:, t]
            else:
                j = t - self.K
                net = mask_true[:, j] * input_frames[:, t] + (1 - mask_true[:, j]) * x_gen
            action = None
            if self.action:
                action = input_actions[:, t]
                if self.conv_on_input:
                    shape1 = net.size()
                    net = self.conv_input1(net)
                    in1 = net
                    shape2 = net.size()
                    net = self.conv_input2(net)
                    in2 = net
                    action = self.action_conv_input2(self.action_conv_input1(action))
                else:
                    net = torch.cat((net, action), 1)
            inp = net
            for i in range(self.L):
                h_t[i], c_t[i], memory, dc, dm = self.cell_list[i](inp, h_t[i], c_t[i], memory, action)
                inp = h_t[i]
                if self.v2:
                    a = F.normalize(self.adapter(dc).view(dc.shape[0], dc.shape[1], -1), dim=2)
                    b = F.normalize(self.adapter(dm).view(dm.shape[0], dm.shape[1], -1), dim=2)
                    decouple.append(torch.mean(torch.abs(torch.cosine_similarity(a, b, dim=2))))
            top = h_t[self.L - 1]
            if self.action and self.conv_on_input:
                if self.res_on_conv:
                    x_gen = self.deconv_output1(top + in2, output_size=shape2)
                    x_gen = self.deconv_output2(x_gen + in1, output_size=shape1)
                else:
                    x_gen = self.deconv_output2(self.deconv_output1(top, output_size=shape2), output_size=shape1)
            else:
                x_gen = self.conv_last(top)
            next_frames.append(x_gen)
        next_frames = torch.stack(next_frames, dim=0).permute(1, 0, 3, 4, 2).contiguous()
        loss = F.mse_loss(next_frames, frames_tensor[:, 1:, :, :, : next_frames.shape[4]])
        if self.v2:
            loss = loss + self.beta * torch.mean(torch.stack(decouple, dim=0))
        return next_frames, loss


def np_full_mask(mask: np.ndarray, width: int, channels: int) -> np.ndarray:
    """Expand a (B, steps) mask to (B, steps, w, w, ch) in numpy, as the reference does."""
    b, s = mask.shape
    full = np.zeros((b, s, width, width, channels), dtype=np.float32)
    for i in range(b):
        for j in range(s):
            if mask[i, j]:
                full[i, j] = 1.0
    return full


def np_rss_mask(itr, batch, K, T, s1=25000, s2=50000, alpha=2500.0, rng=np.random):
    """Reverse scheduled sampling mask drawn in numpy, (B, T-2) of bools."""
    if itr < s1:
        r_eta, eta = 0.5, 0.5
    elif itr < s2:
        r_eta, eta = 1.0 - 0.5 * math.exp(-float(itr - s1) / alpha), 0.5 - (0.5 / (s2 - s1)) * (itr - s1)
    else:
        r_eta, eta = 1.0, 0.0
    r = rng.random_sample((batch, K - 1)) < r_eta
    d = rng.random_sample((batch, T - K - 1)) < eta
    return np.concatenate([r, d], axis=1)


def np_ss_mask(itr, batch, K, T, rate=2e-5, stop=50000, rng=np.random):
    eta = 0.0 if itr >= stop else max(0.0, 1.0 - rate * itr)
    return rng.random_sample((batch, T - K - 1)) < eta


class RefTrainer:
    """The reference's training step: numpy batch -> patch -> FloatTensor -> forward/backward."""

    def __init__(self, net: RefRNN, lr: float, patch_size: int, device="cpu"):
        self.net, self.p, self.device = net, patch_size, device
        self.opt = torch.optim.Adam(net.parameters(), lr=lr)

    def train_step(self, frames_bthwc: np.ndarray, mask: np.ndarray, actions: np.ndarray | None = None) -> float:
        ims = np_reshape_patch(frames_bthwc, self.p)
        if actions is not None:  # actions as constant planes appended to the channels
            b, t, hh, ww, _ = ims.shape
            planes = np.broadcast_to(actions[:, :, None, None, :], (b, t, hh, ww, actions.shape[-1]))
            ims = np.concatenate([ims, planes], axis=-1)
        full = np_full_mask(mask, ims.shape[2], self.net.patch_ch)
        frames_t = torch.FloatTensor(ims).to(self.device)
        mask_t = torch.FloatTensor(full).to(self.device)
        self.opt.zero_grad()
        _, loss = self.net(frames_t, mask_t)
        loss.backward()
        self.opt.step()
        return loss.detach().cpu().numpy()

    def test_step(self, frames_bthwc: np.ndarray, mask: np.ndarray, actions: np.ndarray | None = None) -> np.ndarray:
        # Like the reference's test(): no torch.no_grad(), no eval().
        ims = np_reshape_patch(frames_bthwc, self.p)
        if actions is not None:
            b, t, hh, ww, _ = ims.shape
            ims = np.concatenate([ims, np.broadcast_to(actions[:, :, None, None, :], (b, t, hh, ww, actions.shape[-1]))], -1)
        full = np_full_mask(mask, ims.shape[2], self.net.patch_ch)
        out, _ = self.net(torch.FloatTensor(ims).to(self.device), torch.FloatTensor(full).to(self.device))
        return out.detach().cpu().numpy()
