"""libscore for Python: score-based generative modelling through the C library (ctypes and
numpy, nothing to compile).

    import libscore

    data = libscore.toy_dataset("ring8", 4000, seed=0)            # (4000, 2) float32
    system = libscore.System(libscore.Schedule("vp"),
                             libscore.Model.mlp(2, hidden=64, depth=2), predict="eps")
    losses = libscore.train(system, data, steps=1500)              # EMA weights in system
    gm = libscore.GenModel.from_system(system)
    gm.save("ring8.safetensors")

    gm = libscore.GenModel.load("ring8.safetensors")               # or a file of `score train`
    x = gm.sample(1000, sampler="dpmpp-2m", steps=20, seed=1)      # in the data's units
    logp, bpd = gm.loglik(x[:100])

Modules: :mod:`libscore.errors` (the one exception type :class:`Error`),
:mod:`libscore.params` (parameters by name), :mod:`libscore.models` (schedules, models,
systems), :mod:`libscore.training`, :mod:`libscore.sampling`, :mod:`libscore.likelihood`,
:mod:`libscore.genmodel`. The shared library is found as described in ``libscore._native``
(``LIBSCORE_LIBRARY`` overrides it). Arrays: see ``libscore._arrays`` (float32 C-contiguous
inputs are passed without a copy).
"""

from . import _native
from .errors import Error
from .genmodel import GenModel
from .likelihood import Likelihood, loglik
from .models import LABEL_NULL, Model, Schedule, System, schedule_presets
from .params import param_id, param_info, param_names
from .sampling import GRIDS, SAMPLERS, Sampler, sample, sampler_names, step_types
from .training import Loss, Trainer, toy_dataset, toy_datasets, train

__version__ = _native.VERSION

__all__ = [
    "Error", "GenModel", "Likelihood", "loglik", "LABEL_NULL", "Model", "Schedule", "System",
    "schedule_presets", "param_id", "param_info", "param_names", "GRIDS", "SAMPLERS",
    "Sampler", "sample", "sampler_names", "step_types", "Loss", "Trainer", "toy_dataset",
    "toy_datasets", "train", "version", "library_path", "blas_check",
]


def version():
    """The version string of the loaded library, e.g. '0.1.0'."""
    return _native.lib.score_version_string().decode()


def library_path():
    """Where the shared library was loaded from."""
    return _native.LIBRARY


def blas_check():
    """Which kernels the BLAS loaded with the library runs, against the processor
    (score_blas_check()): a dict of strings with the keys ``blas``, ``blas_version``,
    ``core``, ``core_isa``, ``cpu_isa``, ``fit`` (``"match"``, ``"narrow"``: kernels of an
    older processor, slower products; or ``"unknown"``) and, when narrow with OpenBLAS,
    ``hint`` (the environment setting that selects the processor's kernels, e.g.
    ``"OPENBLAS_CORETYPE=SkylakeX"``, to set before the process starts)."""
    import ctypes
    buf = ctypes.create_string_buffer(256)
    _native.lib.score_blas_check(buf, len(buf), None)
    return dict(item.split("=", 1) for item in buf.value.decode().split())
