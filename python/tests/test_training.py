"""Training: losses that fall, progress callbacks (stop, exceptions), checkpoints that resume
bit for bit, conditional networks with labels and context vectors."""

import math
import os

import numpy as np
import pytest

import libscore as ls


def _trainer(model, system, **kw):
    tr = ls.Trainer(model, system, "sde", "adam", batch_size=64, seed=3, **kw)
    tr.optimizer.set(lr=2e-3, warmup=10, grad_clip=1.0)
    tr.ema.set(decay=0.99)
    return tr


def test_train_sample_loglik_on_ring8():
    data = ls.toy_dataset("ring8", 4000, seed=0)
    assert data.shape == (4000, 2) and data.dtype == np.float32
    system = ls.System(ls.Schedule("vp"), ls.Model.mlp(2, hidden=64, depth=2), "eps")
    losses = ls.train(system, data, steps=1200, lr=3e-3, batch=256)
    assert losses.shape == (1200,) and np.all(np.isfinite(losses))
    # the loss must fall: mean of the last 100 steps well below the first 100
    assert losses[-100:].mean() < 0.8 * losses[:100].mean()
    x = ls.sample(system, 1000, sampler="dpmpp-2m", steps=20, seed=1)
    r, ang = 2 * math.sqrt(2), 2 * math.pi * np.arange(8) / 8
    centres = np.stack([r * np.cos(ang), r * np.sin(ang)], 1)
    d = np.min(np.linalg.norm(x[:, None, :] - centres[None], axis=2), axis=1)
    # blobs have std 0.35; a trained model puts most samples within 1.2 of a centre
    assert np.mean(d < 1.2) > 0.7
    logp, _ = ls.loglik(system, data[:20], rtol=1e-4, atol=1e-4)
    # ring8's entropy is log(8) + log(2 pi e 0.125) = 2.84 nats, so a good model gives about
    # -2.8 per point; the best single Gaussian gives -4.25: require clearly better
    assert logp.mean() > -3.8


def test_progress_callback_stops_and_exceptions_propagate():
    data = ls.toy_dataset("moons", 512, seed=1)
    model = ls.Model.mlp(2, hidden=16, depth=1)
    system = ls.System(ls.Schedule("vp"), model, "eps")
    tr = _trainer(model, system)
    tr.set_data(data)
    seen = []
    losses = tr.run(10, lambda step, loss, lr: seen.append((step, loss, lr)) or step == 4)
    assert [s for s, _, _ in seen] == [1, 2, 3, 4]         # stopped after step 4
    assert tr.step_count == 4 and losses.shape == (4,)
    np.testing.assert_array_equal(losses, [l for _, l, _ in seen])
    assert seen[0][2] == pytest.approx(2e-3 / 10)           # warm-up: lr (k + 1) / W

    def boom(step, loss, lr):
        if step == 7:
            raise ZeroDivisionError("from the callback")

    with pytest.raises(ZeroDivisionError, match="from the callback"):
        tr.run(10, boom)
    assert tr.step_count == 7                               # consistent after step 7
    assert tr.run(3).shape == (3,) and tr.step_count == 10  # and it may run on
    # every 4 steps: the callback sees steps 14, 18 and the last (20)
    seen.clear()
    losses = tr.run(10, lambda s, l, r: seen.append(s), every=4)
    assert seen == [14, 18, 20]
    assert np.all(np.isfinite(losses))                      # every loss recorded


def test_checkpoints_resume_bit_for_bit(tmp_path):
    data = ls.toy_dataset("ring8", 512, seed=2)
    sched = ls.Schedule("vp")

    def fresh():
        m = ls.Model.mlp(2, hidden=16, depth=2, seed=5)
        tr = _trainer(m, ls.System(sched, m, "eps"))
        tr.set_data(data)
        return m, tr

    m1, t1 = fresh()
    t1.run(30)
    path = os.fspath(tmp_path / "ckpt.safetensors")
    t1.save(path)
    ema_at_save = t1.ema_model().weights
    t1.run(30)
    m2, t2 = fresh()
    t2.load(path)
    assert t2.step_count == 30
    t2.run(30)
    np.testing.assert_array_equal(m2.weights, m1.weights)
    np.testing.assert_array_equal(t2.ema_model().weights, t1.ema_model().weights)
    np.testing.assert_array_equal(ls.Trainer.checkpoint_model(path).weights, ema_at_save)
    raw = ls.Trainer.checkpoint_model(path, ema=False).weights
    assert not np.array_equal(raw, ema_at_save)
    with pytest.raises(ls.Error) as e:                       # another architecture
        m3 = ls.Model.mlp(2, hidden=8, depth=2)
        _trainer(m3, ls.System(sched, m3, "eps")).load(path)
    assert e.value.status == "SCORE_E_FORMAT"
    m4, t4 = fresh()                                         # other data: checked, refused
    t4.set_data(data[:500])
    with pytest.raises(ls.Error) as e:
        t4.load(path)
    assert e.value.status == "SCORE_E_FORMAT" and "data parameter 'rows' = 512" in str(e.value)
    assert t4.step_count == 0


def test_conditional_mlp_labels_and_context():
    k, m = 3, 2
    model = ls.Model.mlp(2, hidden=16, depth=2, num_classes=k, context_dim=m, seed=1)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 2)).astype(np.float32)
    ctx = rng.standard_normal((6, m)).astype(np.float32)
    null = model.forward(x, 0.5, labels=np.full(6, k), context=ctx)
    np.testing.assert_array_equal(model.forward(x, 0.5, context=ctx), null)  # no labels = null
    y1 = model.forward(x, 0.5, labels=[1] * 6, context=ctx)
    assert not np.array_equal(y1, null)
    with pytest.raises(ls.Error) as e:
        model.forward(x, 0.5)                                # context input but none given
    assert e.value.status == "SCORE_E_INVAL"
    with pytest.raises(ls.Error) as e:
        model.forward(x, 0.5, labels=[k + 1] * 6, context=ctx)
    assert e.value.status == "SCORE_E_RANGE"
    # trained with labels (label dropout) and contexts; the weights move and stay finite
    data = ls.toy_dataset("ring8", 256, seed=0)
    labels = (np.arange(256) % k).astype(np.int32)
    context = rng.standard_normal((256, m)).astype(np.float32)
    system = ls.System(ls.Schedule("vp"), model, "eps")
    w0 = model.weights
    losses = ls.train(system, data, steps=20, batch=32, labels=labels, context=context,
                      p_uncond=0.2)
    assert np.all(np.isfinite(losses)) and not np.array_equal(system.model.weights, w0)
    system.label, system.context = 2, [0.5, -0.5]
    s_lab = system.score(x, 0.3)
    system.guidance = 1.5
    s_g = system.score(x, 0.3)
    system.guidance, system.label = 0.0, None
    s_null = system.score(x, 0.3)
    # guidance on one network: (1 + w) s(x, y) - w s(x, null), per element in double
    np.testing.assert_allclose(s_g, 2.5 * s_lab.astype(np.float64) - 1.5 * s_null,
                               rtol=1e-5, atol=1e-5)
    system.guidance = 1.0
    with pytest.raises(ls.Error) as e:                       # guidance needs a label
        system.score(x, 0.3)
    assert e.value.status == "SCORE_E_INVAL"


def test_energy_model_labels_context_and_mixture_components():
    k, m = 3, 2
    model = ls.Model.energy_mlp(2, hidden=16, depth=2, num_classes=k, context_dim=m, seed=3)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 2)).astype(np.float32)
    ctx = rng.standard_normal((5, m)).astype(np.float32)
    lab = np.array([0, 1, 2, 3, 1], dtype=np.int32)
    e = model.energy(x, 0.4, labels=lab, context=ctx)
    assert e.dtype == np.float64 and e.shape == (5,) and np.all(np.isfinite(e))
    # minus the gradient of the energy is the score, with the same label and context
    s = model.forward(x, 0.4, labels=lab, context=ctx)
    h = 1e-2
    for j in range(2):
        d = np.zeros((5, 2), dtype=np.float32)
        d[:, j] = h
        fd = (model.energy(x + d, 0.4, labels=lab, context=ctx)
              - model.energy(x - d, 0.4, labels=lab, context=ctx)) / (2 * h)
        np.testing.assert_allclose(-fd, s[:, j], rtol=0, atol=2e-3 * np.abs(s).max())
    np.testing.assert_array_equal(model.energy(x, 0.4, context=ctx),
                                  model.energy(x, 0.4, labels=[k] * 5, context=ctx))
    with pytest.raises(ls.Error) as err:
        model.energy(x, 0.4)                                 # a context input, none given
    assert err.value.status == "SCORE_E_INVAL"
    # a mixture's label y: -log p_t(x | y); no label: the mixture's -log p_t(x)
    sched = ls.Schedule("ve")
    w = np.array([0.25, 0.75])
    gmm = ls.Model.gmm(sched, w, [[1.0, 0.0], [-1.0, 0.5]], [[0.5, 1.0], [1.0, 2.0]])
    e0 = gmm.energy(x, 0.3, labels=[0] * 5)
    e1 = gmm.energy(x, 0.3, labels=[1] * 5)
    np.testing.assert_allclose(gmm.energy(x, 0.3), -np.log(w[0] * np.exp(-e0) + w[1] * np.exp(-e1)),
                               rtol=1e-12)
