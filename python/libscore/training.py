"""Training: losses, the trainer with progress callbacks and checkpoints, toy data sets."""

import ctypes
import os

import numpy as np

from . import _arrays, _native
from ._rng import Rng
from .errors import refuse
from .models import Model, _lookup
from .params import Configurable, Handle, param_info

__all__ = ["Loss", "Trainer", "train", "toy_dataset", "toy_datasets", "LOSSES", "OPTIMIZERS"]

_lib = _native.lib

#: loss kinds (enum score_loss_kind, pinned)
LOSSES = {"hyvarinen": 1, "ssm": 2, "ssm-vr": 3, "dsm": 4, "ncsn": 5, "ddpm": 6, "sde": 7}
#: optimizer kinds (enum score_optimizer_kind, pinned)
OPTIMIZERS = {"sgd": 1, "adam": 2, "adamw": 3}


def toy_datasets():
    """The names of the built-in toy data sets."""
    return [_lib.score_dataset_toy_name(i).decode() for i in range(_lib.score_dataset_toy_count())]


def toy_dataset(name, n, seed=0):
    """n points of a built-in toy data set ('ring8', 'moons', ...) as an (n, dim) float32
    array."""
    dim = _lib.score_dataset_toy_dim(name.encode())
    if dim == 0:
        raise refuse("SCORE_E_UNSUPPORTED",
                     f"unknown toy data set {name!r} (valid: {', '.join(toy_datasets())})")
    out = np.empty((n, dim), dtype=np.float32)
    rng = Rng(seed)
    _lib.score_dataset_toy(name.encode(), rng.ptr, n, _arrays.f32p(out))
    return out


class Loss(Configurable):
    """A score-matching loss by name ('sde', 'dsm', 'ncsn', 'ddpm', 'hyvarinen', 'ssm',
    'ssm-vr') with parameters by name (``sigma``, ``weighting``, ...)."""

    _kind = "loss"
    _free = _lib.score_loss_free
    _set_f64, _set_i64 = _lib.score_loss_set_f64, _lib.score_loss_set_i64

    def __init__(self, name="sde", **params):
        p = ctypes.c_void_p()
        _lib.score_loss_new(ctypes.byref(p), _lookup(LOSSES, name, "loss"))
        super().__init__(p.value)
        self.name = name
        self.set(**params)


class _Part(Configurable):
    """The trainer's optimizer or EMA (owned by the trainer)."""

    def __init__(self, ptr, kind, set_f64, set_i64, owner):
        Handle.__init__(self, ptr)
        self._kind, self._owner = kind, owner
        self._set_f64, self._set_i64 = set_f64, set_i64

    def set(self, **values):
        for name, value in values.items():
            info = param_info(self._kind, name)
            if info.type == "i64":
                self._set_i64(self.ptr, info.id, int(value))
            else:
                self._set_f64(self.ptr, info.id, float(value))
        return self

    def close(self):
        self._ptr = None


class Trainer(Configurable):
    """Trains ``model`` (updated in place) with a loss through a :class:`~libscore.System`.

    loss: a :class:`Loss` or a loss name; optimizer: 'adam', 'adamw' or 'sgd'. Trainer
    parameters by name in ``**params`` or :meth:`set` (``batch_size``, ``seed``, ``use_ema``,
    ``p_uncond``, ...); the optimizer's through :attr:`optimizer` (``lr``, ``warmup``,
    ``grad_clip``, ...) and the EMA's through :attr:`ema` (``decay``)."""

    _kind = "trainer"
    _free = _lib.score_trainer_free
    _set_f64, _set_i64 = _lib.score_trainer_set_f64, _lib.score_trainer_set_i64
    _get_f64, _get_i64 = _lib.score_trainer_get_f64, _lib.score_trainer_get_i64

    def __init__(self, model, system, loss="sde", optimizer="adam", **params):
        if isinstance(loss, str):
            loss = Loss(loss)
        p = ctypes.c_void_p()
        _lib.score_trainer_new(ctypes.byref(p), model.ptr, None if system is None else system.ptr,
                               loss.ptr, _lookup(OPTIMIZERS, optimizer, "optimizer"))
        super().__init__(p.value)
        self.model, self.system = model, system   # borrowed by the trainer: kept alive
        self.optimizer = _Part(_lib.score_trainer_optimizer(self.ptr), "optimizer",
                               _lib.score_optimizer_set_f64, _lib.score_optimizer_set_i64, self)
        self.ema = _Part(_lib.score_trainer_ema(self.ptr), "ema", _lib.score_ema_set_f64,
                         _lib.score_ema_set_i64, self)
        self.set(**params)

    def set_data(self, data, labels=None, context=None):
        """The training rows (copied by the library), with one class label per row (ints,
        -1 = no class) and / or one context vector per row for a conditional model."""
        data = _arrays.rows(data, self.model.dim, "data")
        n = data.shape[0]
        _lib.score_trainer_set_data(self.ptr, n, data.shape[1], _arrays.f32p(data))
        if labels is not None:
            lab = _arrays.vector(labels, n, "labels", np.int32)
            _lib.score_trainer_set_labels(self.ptr, n, _arrays.i32p(lab))
        if context is not None:
            ctx = _arrays.rows(context, name="context")
            if ctx.shape[0] != n:
                raise refuse("SCORE_E_SHAPE", f"context must have {n} rows")
            _lib.score_trainer_set_context(self.ptr, n, ctx.shape[1], _arrays.f32p(ctx))

    @property
    def step_count(self):
        """Steps taken (applied and skipped), also across checkpoints."""
        out = ctypes.c_uint64()
        _lib.score_trainer_get_step(self.ptr, ctypes.byref(out))
        return out.value

    def step(self):
        """One training step; returns its minibatch loss."""
        loss = ctypes.c_double()
        _lib.score_trainer_step(self.ptr, ctypes.byref(loss))
        return loss.value

    def run(self, steps, callback=None, every=1):
        """Takes ``steps`` steps and returns the loss of each (float64 array).

        callback(step, loss, lr) runs after every ``every``-th step and after the last
        (``step`` counts across runs and checkpoints); returning True stops training after
        that step (the losses so far are returned). An exception it raises stops training
        too and is re-raised here (the trainer stays consistent after its last complete step
        and may run on)."""
        losses = np.full(steps, np.nan)
        start = self.step_count
        exc = []

        def progress(step, total, loss, lr, user_data):
            i = step - start - 1          # the library counts steps across runs
            if 0 <= i < steps:
                losses[i] = loss
            if callback is None or ((i + 1) % every != 0 and i + 1 != steps):
                return 0
            try:
                return 1 if callback(step, loss, lr) else 0
            except BaseException as e:  # noqa: B036 - re-raised below
                exc.append(e)
                return 1

        cb = _native.TRAIN_PROGRESS(progress)   # referenced until the call returns
        self.set(progress_every=1)              # every loss is recorded
        try:
            _lib.score_trainer_run(self.ptr, steps, cb, None)
        except Exception as e:
            if exc:
                raise exc[0] from None
            if getattr(e, "status", None) != "SCORE_E_CANCELLED":
                raise
            return losses[:self.step_count - start]
        return losses

    def ema_model(self):
        """An independent copy of the model with the EMA weights (the raw weights with
        use_ema=0)."""
        m = ctypes.c_void_p()
        _lib.score_trainer_ema_model(self.ptr, ctypes.byref(m))   # owned by the trainer
        c = ctypes.c_void_p()
        _lib.score_model_clone(ctypes.byref(c), m)
        return Model(c.value)

    def save(self, path):
        """Writes a checkpoint (model, optimizer, EMA, counters, generator state)."""
        _lib.score_trainer_save(self.ptr, os.fsencode(path))

    def load(self, path):
        """Restores a checkpoint into this trainer, configured like the one that saved it
        (architecture, optimizer kind and hyper-parameters, loss, system, data): training then
        continues bit for bit. A trainer configured otherwise (another learning rate, batch
        size, EMA decay, loss or loss parameter, schedule or parameterization, other data,
        labels or contexts...) is refused with an error that names the parameter and both
        values. The data are not stored but checked: call :meth:`set_data` first."""
        _lib.score_trainer_load(self.ptr, os.fsencode(path))

    @staticmethod
    def checkpoint_model(path, ema=True):
        """The model stored in a checkpoint file, with the EMA (or the raw) weights."""
        p = ctypes.c_void_p()
        _lib.score_trainer_checkpoint_model(ctypes.byref(p), os.fsencode(path), 1 if ema else 0)
        return Model(p.value)


def train(system, data, steps=2000, loss="sde", optimizer="adam", lr=2e-3, batch=256,
          warmup=100, clip=1.0, ema=0.999, seed=0, labels=None, context=None, p_uncond=None,
          callback=None):
    """Trains system.model on data (rows x dim) and replaces it in the system by a copy
    holding the EMA weights (ema=0: the raw weights). Returns the per-step losses.
    callback(step, loss, lr) as in :meth:`Trainer.run`."""
    tr = Trainer(system.model, system, loss, optimizer, batch_size=batch, seed=seed,
                 use_ema=1 if ema > 0 else 0)
    try:
        tr.optimizer.set(lr=lr, warmup=warmup, grad_clip=clip)
        if ema > 0:
            tr.ema.set(decay=ema)
        if p_uncond is not None:
            tr.set(p_uncond=p_uncond)
        tr.set_data(data, labels=labels, context=context)
        losses = tr.run(steps, callback)
        if ema > 0:
            system.set_model(tr.ema_model())
        return losses
    finally:
        tr.close()
