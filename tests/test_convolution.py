"""The pack's first-layer convolution: oneDNN's forward, and a weight gradient from shared patch rows
that equals autograd's through conv2d (to float32 rounding, checked in float64 to 1e-12)."""

import pytest
import torch
import torch.nn.functional as F

from workers.convolution import SharedPatchConv, conv_per_run, patch_rows


@pytest.mark.parametrize("stride, padding", [(1, 0), (2, 1), ((1, 2), (2, 0))])
def test_the_weight_and_bias_gradients_equal_conv2ds(stride, padding):
    generator = torch.Generator().manual_seed(0)
    conv = torch.nn.Conv2d(3, 4, kernel_size=(3, 2), stride=stride, padding=padding).double()
    images = torch.randn(5, 3, 9, 8, generator=generator, dtype=torch.float64)
    weight = torch.randn(4, 3, 3, 2, generator=generator, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(4, generator=generator, dtype=torch.float64, requires_grad=True)

    expected_out = F.conv2d(images, weight, bias, conv.stride, conv.padding)
    upstream = torch.randn(expected_out.shape, generator=generator, dtype=torch.float64)
    expected = torch.autograd.grad(expected_out, (weight, bias), upstream)

    out = SharedPatchConv.apply(images, patch_rows(images, conv), weight, bias, conv.stride, conv.padding)
    got = torch.autograd.grad(out, (weight, bias), upstream)
    assert torch.equal(out, expected_out)  # the forward is conv2d itself
    for ours, theirs in zip(got, expected):
        assert torch.allclose(ours, theirs, rtol=1e-12, atol=1e-12)


def test_patch_rows_are_the_patches_by_hand():
    images = torch.arange(9.0).reshape(1, 1, 3, 3)  # 0 1 2 / 3 4 5 / 6 7 8
    rows = patch_rows(images, torch.nn.Conv2d(1, 1, kernel_size=2))
    assert rows.tolist() == [[0, 1, 3, 4], [1, 2, 4, 5], [3, 4, 6, 7], [4, 5, 7, 8]]


@pytest.mark.parametrize("conv", [
    torch.nn.Conv2d(2, 2, 3, groups=2), torch.nn.Conv2d(2, 2, 3, dilation=2), torch.nn.Conv2d(2, 2, 3, padding="same"),
    torch.nn.Conv2d(2, 2, 3, padding=1, padding_mode="reflect"),
])
def test_other_convolutions_have_no_patch_rows_and_keep_conv2ds_gradient(conv):
    images = torch.randn(2, 2, 7, 7)
    assert patch_rows(images, conv) is None
    params = {name: p.detach()[None].repeat(2, *[1] * p.dim()).requires_grad_(True) for name, p in conv.named_parameters()}
    outputs = conv_per_run(conv, params, images, count=2)
    assert all(out.grad_fn.name() == "ConvolutionBackward0" for out in outputs)


def test_a_shared_input_takes_the_patch_path_and_per_run_inputs_do_not():
    conv = torch.nn.Conv2d(1, 3, 5)
    params = {name: p.detach()[None].repeat(4, *[1] * p.dim()).requires_grad_(True) for name, p in conv.named_parameters()}
    shared = conv_per_run(conv, params, torch.randn(2, 1, 12, 12), count=4)
    own = conv_per_run(conv, params, list(torch.randn(4, 2, 1, 12, 12)), count=4)
    assert [out.grad_fn.name() for out in shared] == ["SharedPatchConvBackward"] * 4
    assert [out.grad_fn.name() for out in own] == ["ConvolutionBackward0"] * 4
    with torch.no_grad():  # evaluation needs no patches
        assert all(out.grad_fn is None for out in conv_per_run(conv, params, torch.randn(2, 1, 12, 12), count=4))
