"""A pack's convolutions: one plain convolution per run, and the first layer's weight gradient
from patches its runs share.

Each run of a pack is convolved alone, with the kernel it gets alone, so its numbers never
depend on its pack (vmap's grouped convolution over K runs was also slower here: docs/benchmarks.md).
The runs of a pack see the same minibatch, so a convolution applied to the input itself sees the
same patches in every run. oneDNN's weight gradient of such a layer is slow on a CPU when it has
few input channels (LeNet's first layer: 6.3 ms of a 7.7 ms step for one run, batch 100); written as
one matrix product of the output gradient with the patch matrix, built once per step for the
whole pack, it takes 1.5 ms. The forward pass stays oneDNN's convolution.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F


def patch_rows(images: torch.Tensor, conv: torch.nn.Conv2d) -> torch.Tensor | None:
    """The patches `conv` multiplies, one row per output pixel: [N * H_out * W_out, C * k_h * k_w],
    rows in (sample, row, column) order, columns in the weight's (channel, k_h, k_w) order.
    None where this is not a plain convolution of a 4-d input (groups, dilation, other padding)."""
    if conv.groups != 1 or conv.dilation != (1, 1) or conv.padding_mode != "zeros" or images.dim() != 4 \
            or isinstance(conv.padding, str):
        return None
    (pad_h, pad_w), (stride_h, stride_w), (k_h, k_w) = conv.padding, conv.stride, conv.kernel_size
    padded = F.pad(images, (pad_w, pad_w, pad_h, pad_h)) if pad_h or pad_w else images
    patches = padded.unfold(2, k_h, stride_h).unfold(3, k_w, stride_w)  # [N, C, H_out, W_out, k_h, k_w]
    return patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, images.shape[1] * k_h * k_w)


class SharedPatchConv(torch.autograd.Function):
    """conv2d(images, weight, bias) whose weight gradient is (output gradient) x (patch rows): for an
    input that needs no gradient, with the patch rows built from it once for every run of a pack."""

    @staticmethod
    def forward(ctx, images, rows, weight, bias, stride, padding):  # type: ignore[override]
        ctx.save_for_backward(rows)
        ctx.weight_shape, ctx.has_bias = weight.shape, bias is not None
        return F.conv2d(images, weight, bias, stride, padding)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        (rows,) = ctx.saved_tensors
        per_channel = grad.transpose(0, 1).reshape(grad.shape[1], -1)  # [C_out, N * H_out * W_out], rows' order
        grad_weight = (per_channel @ rows).view(ctx.weight_shape)
        grad_bias = per_channel.sum(dim=1) if ctx.has_bias else None
        return None, None, grad_weight, grad_bias, None, None


def conv_per_run(
    conv: torch.nn.Conv2d, params: dict[str, torch.Tensor], inputs: torch.Tensor | Sequence[torch.Tensor], count: int
) -> list[torch.Tensor]:
    """Each run's `conv` output: `inputs` holds each run's [N, C, H, W], or is one such tensor that every
    run sees (the minibatch itself)."""
    weights = params["weight"].unbind(0)  # unbind, not indexing: K selects' backward would fill K full-size zeros
    biases = params["bias"].unbind(0) if "bias" in params else [None] * count
    if not isinstance(inputs, torch.Tensor):
        return [F.conv2d(image, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)
                for image, weight, bias in zip(inputs, weights, biases)]
    rows = patch_rows(inputs, conv) if torch.is_grad_enabled() and not inputs.requires_grad else None
    if rows is None:
        return [F.conv2d(inputs, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)
                for weight, bias in zip(weights, biases)]
    return [SharedPatchConv.apply(inputs, rows, weight, bias, conv.stride, conv.padding)
            for weight, bias in zip(weights, biases)]
