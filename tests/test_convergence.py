"""The convergence rule of the shared training loop: training stops after `patience`
validation passes without a relative gain above `min_delta`, the learning rate decays on a
plateau, and a resumed trial that had converged does not train again."""
import torch

from harness.loop import Convergence, converged, fit_loop


def scripted(scores):
    """A validation function that returns the given scores in turn (then its last)."""
    it = iter(scores)
    last = [None]

    def validate():
        last[0] = next(it, last[0])
        return last[0]
    return validate


def toy():
    torch.manual_seed(0)
    module = torch.nn.Linear(3, 1)
    x = torch.randn(64, 3)
    return module, (lambda xb: {"loss": module(xb).pow(2).mean()}), (x,)


def run(scores, epochs=20, **rule):
    module, loss, train = toy()
    return fit_loop(module, loss, train, epochs=epochs, batch=16, lr=1e-2, seed=0,
                    validate=scripted(scores), convergence=Convergence(**rule))


def test_training_stops_after_patience_passes_without_a_gain_above_min_delta():
    # 10, 11, 12 improve; 12.01 is below a 1 % gain of 12, as are the rest: three passes
    # without a gain, so with patience 3 it stops at the sixth pass
    history, best_epoch, _ = run([10, 11, 12, 12.01, 12.05, 11.0, 20, 30], patience=3,
                                 min_delta=0.01)
    assert [r["epoch"] for r in history] == [1, 2, 3, 4, 5, 6]
    assert [r["since_best"] for r in history] == [0, 0, 0, 1, 2, 3]
    assert best_epoch == 5  # the best state is the true maximum (12.05), not the mark
    assert converged(history, 3)


def test_without_patience_every_epoch_trains_and_nothing_is_called_converged():
    history, _, _ = run([10, 10, 10, 10], epochs=4)
    assert len(history) == 4 and not converged(history, 0)
    assert "since_best" not in history[-1]


def test_a_trial_at_its_cap_still_improving_is_not_converged():
    history, _, _ = run([1, 2, 3, 4, 5], epochs=5, patience=2)
    assert len(history) == 5 and not converged(history, 2)


def test_the_learning_rate_decays_after_decay_after_passes_without_gain():
    # ReduceLROnPlateau: after `decay_after` bad passes, the next bad one multiplies the rate
    history, _, _ = run([5, 5, 5, 5, 5, 5], epochs=6, patience=10, decay=0.5, decay_after=1)
    lrs = [r["lr"] for r in history]
    assert lrs[0] == 1e-2 and lrs[-1] < lrs[0]
    assert all(b in (a, a * 0.5) for a, b in zip(lrs, lrs[1:]))


def test_a_resumed_trial_that_had_converged_does_not_train_again(tmp_path):
    module, loss, train = toy()
    kw = dict(epochs=20, batch=16, lr=1e-2, seed=0, checkpoint_dir=tmp_path,
              convergence=Convergence(patience=2))
    first, _, _ = fit_loop(module, loss, train, validate=scripted([3, 2, 1]), **kw)
    assert len(first) == 3
    # continued to a later rung: validate must not be called again
    second, best_epoch, resumed = fit_loop(module, loss, train, validate=scripted([]), **kw)
    assert second == first and best_epoch == 1 and resumed == 3
