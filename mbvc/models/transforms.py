"""Transformation output stage of the PredRNN family (``model.output``, issue 28).

With ``output: flow`` the decoder predicts, per pixel, besides the C channels of a generated
image, a dense flow field and three mask logits, and the predicted frame is a composite
(Finn et al. 2016; SNA, Ebert et al. 2017; SAVP, Lee et al. 2018)::

    frame = m0 * warp(prev, flow) + m1 * first + m2 * generated,   (m0, m1, m2) = softmax(logits)

* ``prev``: the frame the step was given as input (true or own prediction, as the curriculum
  decides; in a rollout the previous prediction);
* ``first``: the first frame of the sequence (a skip that brings back what is hidden now);
* ``generated``: the image the decoder paints (what no transformation explains).

Conventions (every function here):

* ``flow`` is (B, 2, H, W) in pixels, channel 0 = dx (along the width), channel 1 = dy (along
  the height), a *backward* sampling offset: ``warp(img, flow)[y, x] = img[y + dy, x + dx]``
  (bilinear). Content therefore moves by ``-flow``: a block moving 1 px to the right has
  ``dx = -1`` on it.
* Mask order is ``(prev, first, generated)``; masks are (B, 3, H, W) and sum to 1 per pixel.
* Sampling is ``F.grid_sample(mode="bilinear", padding_mode="border", align_corners=False)``
  on pixel-centre coordinates ``(2 (x + dx) + 1) / W - 1``: for a power-of-two width and height
  (every preset's frames) the normalised coordinate of an integer position is exact in float, so
  a zero (or integer) flow samples ``prev`` bit for bit; for other sizes it is within a few ulps.
  One fused kernel forward and backward: 2.5x faster than four explicit gathers (fwd + bwd,
  (8, 3, 32, 32), 2 threads, benchmarks/notes/push-flow-output.md). Gradients w.r.t. the flow
  are grid_sample's (one-sided differences at integer positions, zero where the position is
  clamped at the border).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mbvc.errors import ShapeError

#: Output stages a :class:`~mbvc.models.config.ModelConfig` accepts (``model.output``).
OUTPUTS = ("pixels", "flow")
#: Extra decoder channels of the flow stage: 2 flow + 3 mask logits.
FLOW_CHANNELS = 5
#: Initial bias of the head: flow 0, mask logits favouring ``prev`` (softmax(2, 0, 0) =
#: (0.79, 0.11, 0.11)), so an untrained model starts close to copy-last yet every mask gets
#: gradient.
FLOW_HEAD_BIAS = (0.0, 0.0, 2.0, 0.0, 0.0)


def _check(images: torch.Tensor, flow: torch.Tensor, name: str = "images") -> None:
    if images.dim() != 4 or flow.dim() != 4 or flow.shape[1] != 2 or flow.shape[0] != images.shape[0] \
            or flow.shape[-2:] != images.shape[-2:]:
        raise ShapeError(f"warp needs {name} (B, C, H, W) and flow (B, 2, H, W), got "
                         f"{tuple(images.shape)} and {tuple(flow.shape)}")


def warp(images: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Bilinear backward warp: ``out[b, :, y, x] = images[b, :, y + dy, x + dx]``, borders clamped.

    Args:
        images: (B, C, H, W).
        flow: (B, 2, H, W) in pixels, channel 0 = dx, channel 1 = dy.

    Returns:
        (B, C, H, W); equal (``torch.equal``) to ``images`` for a zero flow where H and W are
        powers of two.
    """
    _check(images, flow)
    h, w = images.shape[-2:]
    xs = torch.arange(w, device=flow.device, dtype=flow.dtype)
    ys = torch.arange(h, device=flow.device, dtype=flow.dtype)[:, None]
    grid = torch.stack(((2 * (xs + flow[:, 0]) + 1) / w - 1, (2 * (ys + flow[:, 1]) + 1) / h - 1), dim=-1)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def blend(prev: torch.Tensor, first: torch.Tensor, generated: torch.Tensor, flow: torch.Tensor,
          masks: torch.Tensor) -> torch.Tensor:
    """``masks[:, 0] * warp(prev, flow) + masks[:, 1] * first + masks[:, 2] * generated``.

    Args:
        prev, first, generated: (B, C, H, W) (``first`` may have batch 1, broadcast).
        flow: (B, 2, H, W).
        masks: (B, 3, H, W), after the softmax.
    """
    if masks.dim() != 4 or masks.shape[1] != 3:
        raise ShapeError(f"masks must be (B, 3, H, W), got {tuple(masks.shape)}")
    return masks[:, 0:1] * warp(prev, flow) + masks[:, 1:2] * first + masks[:, 2:3] * generated


def compose(prev: torch.Tensor, first: torch.Tensor, generated: torch.Tensor, flow: torch.Tensor,
            mask_logits: torch.Tensor) -> torch.Tensor:
    """The predicted frame from the decoder's outputs: :func:`blend` with ``softmax(mask_logits)``.

    Args:
        prev: (B, C, H, W) the step's input frame.
        first: (B, C, H, W) the sequence's first frame.
        generated: (B, C, H, W) the decoder's image.
        flow: (B, 2, H, W) backward offsets in pixels (dx, dy).
        mask_logits: (B, 3, H, W) in the order (prev, first, generated).

    Returns:
        (B, C, H, W) the composite frame.
    """
    return blend(prev, first, generated, flow, torch.softmax(mask_logits, dim=1))


def push_distribution(p: torch.Tensor, flow: torch.Tensor, masks: torch.Tensor,
                      p_first: torch.Tensor) -> torch.Tensor:
    """Push a probability map through one predicted step (Visual Foresight's designated pixel).

    ``q = masks[:, 0] * warp(p, flow) + masks[:, 1] * p_first`` then ``q / q.sum()`` per sample:
    the mass follows the pixels it sits on through the same transformation as the image (so it
    moves by ``-flow``), the first-frame skip brings back the first frame's distribution where
    the model copies the first frame, and the generated image carries no mass (a painted pixel
    says nothing about where the designated pixel went). Backward sampling does not conserve
    mass, hence the renormalisation; a sample whose mass vanishes entirely becomes uniform.

    Args:
        p: (B, 1, H, W) the distribution at the step's input frame, summing to 1 per sample.
        flow: (B, 2, H, W) the step's flow.
        masks: (B, 3, H, W) the step's masks (after softmax), order (prev, first, generated).
        p_first: (B, 1, H, W) (or batch 1) the distribution at the first frame.

    Returns:
        (B, 1, H, W) summing to 1 per sample.
    """
    if p.dim() != 4 or p.shape[1] != 1:
        raise ShapeError(f"p must be (B, 1, H, W), got {tuple(p.shape)}")
    if masks.dim() != 4 or masks.shape[1] != 3:
        raise ShapeError(f"masks must be (B, 3, H, W), got {tuple(masks.shape)}")
    q = masks[:, 0:1] * warp(p, flow) + masks[:, 1:2] * p_first
    total = q.sum(dim=(2, 3), keepdim=True)
    uniform = torch.full_like(q, 1.0 / (q.shape[-1] * q.shape[-2]))
    ok = total > torch.finfo(q.dtype).tiny
    return torch.where(ok, q / torch.where(ok, total, torch.ones_like(total)), uniform)


def make_head(output: str, hidden: int, filter_size: int, strided: bool) -> nn.Module | None:
    """The decoder head of a non-pixel output (None for pixels).

    ``strided``: the model decodes through the stride-2 deconvolutions (``conv_on_input``); the
    head is then a stride-2 deconvolution from the last decoder features (hidden // 2 channels,
    half resolution), a sibling of ``deconv_output2``; otherwise a 1x1 convolution of the top
    hidden state, a sibling of ``conv_last``. Its weights start at zero and its bias at
    :data:`FLOW_HEAD_BIAS`: the flow starts exactly 0 and the masks favour ``prev``.
    """
    if output == "pixels":
        return None
    k = filter_size
    if strided:
        head: nn.Module = nn.ConvTranspose2d(hidden // 2, FLOW_CHANNELS, k, stride=2, padding=k // 2, bias=True)
    else:
        head = nn.Conv2d(hidden, FLOW_CHANNELS, 1, bias=True)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.copy_(torch.tensor(FLOW_HEAD_BIAS))
    return head
