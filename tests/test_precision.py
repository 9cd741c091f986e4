"""Mixed precision (`--precision bf16`): the same network in bf16 arithmetic, float32 outside."""
import pytest
import torch

from harness.common import ConfigError
from harness.models import MixedPrecisionMLP, TwoViewModel
from harness.suites.mnist_halves import SUITE as MNIST

resolve = MNIST.resolve
run_trial = MNIST.trial


def test_bf16_networks_compute_the_fp32_function_to_bf16_accuracy_with_fp32_weights():
    torch.manual_seed(0)
    fp32 = TwoViewModel(392, 392, 50, decoders="views")
    bf16 = TwoViewModel(392, 392, 50, decoders="views", precision="bf16")
    assert list(bf16.state_dict()) == list(fp32.state_dict())  # checkpoints interchange
    bf16.load_state_dict(fp32.state_dict())
    assert isinstance(bf16.enc1, MixedPrecisionMLP) and isinstance(bf16.dec2, MixedPrecisionMLP)
    assert all(p.dtype == torch.float32 for p in bf16.parameters())
    h1, h2 = torch.rand(256, 392), torch.rand(256, 392)
    for model in (fp32, bf16):
        f1, f2 = model(h1, h2)
        (f1.pow(2).sum() + model.dec1(f1).sum() + model.dec2(f2).pow(2).sum()).backward()
    out32, out16 = fp32(h1, h2)[0], bf16(h1, h2)[0]
    assert out16.dtype == torch.float32
    # bf16 keeps 8 significant bits: ~0.4 % per rounding, a few roundings deep
    assert (out16 - out32).norm() / out32.norm() < 2e-2
    assert (out16 - out32).norm() / out32.norm() > 0  # it did run in bf16
    for (name, p32), p16 in zip(fp32.named_parameters(), bf16.parameters()):
        assert (p16.grad - p32.grad).norm() / p32.grad.norm() < 5e-2, name


def test_precision_is_validated_and_recorded(mnist_smoke):
    with pytest.raises(ConfigError, match="precision 'fp16'"):
        resolve({"method": "dcca", "d": 10, "profile": "smoke", "precision": "fp16"})
    assert resolve({"method": "dcca", "d": 10, "profile": "smoke"})["precision"] == "fp32"
    result = run_trial({"method": "muc2m", "d": 10, "profile": "smoke", "precision": "bf16"},
                       data=mnist_smoke, device="cpu", log=lambda m: None)
    assert result.precision == "bf16"
    assert torch.isfinite(torch.tensor(result.metrics["corr_heldout"]))
    assert result.metrics["corr_heldout"] > result.metrics["corr_floor"]


def test_bf16_encoders_compute_their_last_layer_in_fp32_and_decoders_do_not():
    torch.manual_seed(0)
    model = TwoViewModel(392, 392, 50, decoders="views", precision="bf16")
    h = torch.rand(64, 392)
    hidden = h
    with torch.autocast("cpu", dtype=torch.bfloat16):
        for layer in list(model.enc1)[:-1]:
            hidden = layer(hidden)
    expected = model.enc1[-1](hidden.float())  # float32 Linear on the bf16 activations
    out = model.enc1(h)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    assert not torch.equal(out, out.bfloat16().float())  # float32 resolution, not bf16's
    recon = model.dec1(out)
    assert recon.dtype == torch.float32 and torch.equal(recon, recon.bfloat16().float())


def test_emulated_bf16_falls_back_to_fp32_unless_asked_for(monkeypatch, capsys):
    """On a CPU that would emulate bf16, the profile's bf16 becomes fp32 with a note; an
    explicit --precision bf16 is kept with a warning; a native-bf16 CPU or a GPU changes
    nothing. The sweep and the audit warn by the same helper."""
    from argparse import Namespace

    from harness import models, run
    from harness.cli import warn_emulated_bf16
    from harness.suites import get_suite
    suite = get_suite("mnist_halves")
    for module in (run, models):
        monkeypatch.setattr(module, "native_bf16_cpu", lambda: False)
    options = {}
    note = run.fall_back_from_emulated_bf16(Namespace(precision=None), suite, "quick", 0.0,
                                            options)
    assert options == {"precision": "fp32"} and note.startswith("precision: fp32")
    assert "emulated" in note and capsys.readouterr().err == ""
    options = {}
    assert run.fall_back_from_emulated_bf16(Namespace(precision="bf16"), suite, "quick", 0.0,
                                            options) == ""
    assert options == {} and "warning: bf16 on this CPU" in capsys.readouterr().err
    assert run.fall_back_from_emulated_bf16(Namespace(precision=None), suite, "quick", 1.0,
                                            options) == "" and options == {}
    assert not warn_emulated_bf16("fp32", 0.0) and not warn_emulated_bf16("bf16", 0.5)
    assert capsys.readouterr().err == ""
    for module in (run, models):
        monkeypatch.setattr(module, "native_bf16_cpu", lambda: True)
    assert run.fall_back_from_emulated_bf16(Namespace(precision=None), suite, "quick", 0.0,
                                            options) == "" and options == {}
    assert capsys.readouterr().err == ""
