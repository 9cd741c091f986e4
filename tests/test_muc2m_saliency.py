"""Saliency: captum GradCAM maps of MUC2M scores at input resolution, and input
gradients for feature inputs."""
from collections import OrderedDict

import pytest
import torch
from test_muc2m_fixtures import linear_model, one_thread  # noqa: F401 (fixture)
from torch import nn

from muc2m.model import MUC2M, SCORES
from muc2m.saliency import gradcam, input_gradient


def tiny_cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(OrderedDict(
        conv1=nn.Conv2d(1, 4, 3, padding=1), relu1=nn.ReLU(),
        conv2=nn.Conv2d(4, 8, 3, stride=2, padding=1), relu2=nn.ReLU(),
        pool=nn.AdaptiveAvgPool2d(1), flat=nn.Flatten()))


@pytest.fixture(scope="module")
def random_setup():
    g = torch.Generator().manual_seed(0)
    images = torch.rand(6, 1, 16, 16, generator=g)
    partner = torch.randn(6, 8, generator=g)
    return MUC2M(d=4, hidden=(16,), seed=0, device="cpu").build(8, 8), tiny_cnn(), images, partner


@pytest.mark.parametrize("score", SCORES)
@pytest.mark.parametrize("view", [1, 2])
def test_gradcam_maps_shape_sign_and_batch_independence(random_setup, score, view):
    model, cnn, images, partner = random_setup
    pair = (images, partner) if view == 1 else (partner, images)
    maps = model.saliency(*pair, kind=score, view=view, extractor=cnn)
    assert maps.shape == (6, 16, 16)
    assert torch.isfinite(maps).all() and (maps >= 0).all()
    # one image at a time gives the same maps (eval mode: no coupling through the batch)
    single = torch.cat([gradcam(model, cnn, images[j:j + 1], partner[j:j + 1], view=view,
                                score=score) for j in range(6)])
    torch.testing.assert_close(maps, single)
    # the default layer is the extractor's last Conv2d; naming it gives the same maps
    named = model.saliency(*pair, kind=score, view=view, extractor=cnn, layer="conv2")
    torch.testing.assert_close(maps, named)


def test_feature_saliency_is_absolute_input_gradient(random_setup):
    model, _, _, partner = random_setup
    h1 = torch.randn(6, 8, generator=torch.Generator().manual_seed(3))
    signed = input_gradient(model, h1, partner, score="dot", absolute=False)
    assert signed.shape == (6, 8) and (signed < 0).any()
    torch.testing.assert_close(model.saliency(h1, partner, kind="dot"), signed.abs())
    numpy_maps = model.saliency(h1.numpy(), partner.numpy(), kind="dot")
    torch.testing.assert_close(torch.from_numpy(numpy_maps), signed.abs())


# Bright object in COMMON rows 2–7, cols 8–15; dark object in INDIVIDUAL rows 10–15, cols 0–5
# (asymmetric boxes: a transposed or flipped map would miss them).
COMMON = (slice(2, 8), slice(8, 16))
INDIVIDUAL = (slice(10, 16), slice(0, 6))


def two_object_setup():
    """An extractor whose channel 0 sees bright pixels and channel 1 dark pixels (3×3 box
    filters, stride 2, then ReLU, average pool), and a linear MUC2M in which the common
    representation reads channel 0 only and the individual one channel 1 only:
        z1 = f0 · (1, 1), partner z2 = (1, 1),  w1 = f1 · (1, −1).
    So the dot/norm common scores grow with f0 alone and the individual score ‖P w1‖ = √2·f1
    (P removes span(z1, z2) = span((1, 1)), a rank-1 span) with f1 alone."""
    g = torch.Generator().manual_seed(0)
    images = 0.02 * torch.randn(5, 1, 16, 16, generator=g)
    images[(..., *COMMON)] = 0.5 + 0.5 * torch.rand(5, 1, 6, 8, generator=g)
    images[(..., *INDIVIDUAL)] = -(0.5 + 0.5 * torch.rand(5, 1, 6, 6, generator=g))
    conv = nn.Conv2d(1, 2, 3, stride=2, padding=1, bias=False)
    with torch.no_grad():
        conv.weight[0].fill_(1 / 9)
        conv.weight[1].fill_(-1 / 9)
    extractor = nn.Sequential(OrderedDict(
        conv=conv, act=nn.ReLU(), pool=nn.AdaptiveAvgPool2d(1), flat=nn.Flatten()))
    model = linear_model(u1=torch.tensor([[1.0, 1.0], [0.0, 0.0]]), u2=torch.eye(2),
                         v1=torch.tensor([[0.0, 0.0], [1.0, -1.0]]), dtype=torch.float32)
    return model, extractor, images, torch.ones(5, 2)


def mass_in(maps: torch.Tensor, box) -> torch.Tensor:
    mask = torch.zeros_like(maps[0])
    mask[box] = 1
    return (maps * mask).sum((1, 2)) / maps.sum((1, 2))


def dilated(box, pixels: int = 2, size: int = 16):
    return tuple(slice(max(b.start - pixels, 0), min(b.stop + pixels, size)) for b in box)


@pytest.mark.parametrize("score,box,other", [("dot", COMMON, INDIVIDUAL),
                                             ("norm", COMMON, INDIVIDUAL),
                                             ("individual", INDIVIDUAL, COMMON)])
def test_gradcam_localizes_the_region_the_score_reads(score, box, other):
    """GradCAM is coarse (one cell of the stride-2 layer is 2 pixels, the 3×3 filter and the
    bilinear upsampling blur the edge by about one more): most mass inside the box, nearly all
    within 2 pixels of it, and none on the other object."""
    model, extractor, images, partner = two_object_setup()
    maps = model.saliency(images, partner, kind=score, extractor=extractor, layer="act")
    inside, near, on_other = mass_in(maps, box), mass_in(maps, dilated(box)), mass_in(maps, other)
    print(f"{score}: mass in its box {inside.numpy().round(3)}, within 2 px "
          f"{near.numpy().round(3)}, on the other object {on_other.numpy().round(4)}")
    assert (maps.sum((1, 2)) > 0).all()
    assert (inside > 0.75).all() and (near > 0.95).all() and (on_other < 0.01).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gradcam_runs_on_the_inputs_device():
    model, extractor, images, partner = two_object_setup()
    cpu = model.saliency(images, partner, kind="dot", extractor=extractor, layer="act")
    model.common.cuda()
    model.individual.cuda()
    model.device = torch.device("cuda")
    gpu = model.saliency(images.cuda(), partner, kind="dot", extractor=extractor.cuda(),
                         layer="act")
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-5, rtol=1e-4)
