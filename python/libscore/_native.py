"""Loading libscore's shared library and declaring the C functions the package calls.

Where the library comes from, in this order:

1. the environment variable ``LIBSCORE_LIBRARY``: the path of a ``libscore.so`` (a build tree,
   a library installed elsewhere); when it is set, nothing else is tried;
2. the library's soname (``libscore.so.0``) through the system's dynamic loader, i.e. the
   directories of ``LD_LIBRARY_PATH``, the ld.so cache and the default directories: where
   ``meson install`` and the Debian package ``libscore0`` put it;
3. the library directory of the installation the package came from (recorded at install time
   in ``_build.py``), for prefixes the loader does not search (``/opt/...``, ``~/.local``).

If none works, importing the package raises :class:`ImportError` naming what was tried. A
library older than the package is refused the same way (its functions may be missing or mean
something else).
"""

import ctypes
import os

try:  # written by meson when the package is built or installed (python/libscore/meson.build)
    from . import _build
except ImportError:  # the package used straight from the source tree
    _build = None

#: soname of the library this package was generated for
SONAME = _build.SONAME if _build else "libscore.so.0"
#: version of the package (that of the library it was generated for)
VERSION = _build.VERSION if _build else "0.1.0"


def _version_number(text):
    major, minor, patch = (int(p) for p in text.split(".")[:3])
    return major * 1000000 + minor * 1000 + patch


def _open():
    """The loaded library (ctypes.CDLL), or ImportError saying what was tried."""
    tried = []
    override = os.environ.get("LIBSCORE_LIBRARY")
    if override:
        candidates = [(override, "LIBSCORE_LIBRARY")]
    else:
        candidates = [(SONAME, "the dynamic loader")]
        if _build and _build.LIBDIR:
            candidates.append((os.path.join(_build.LIBDIR, SONAME), "the install directory"))
    for path, how in candidates:
        try:
            lib = ctypes.CDLL(path)
        except OSError as e:
            tried.append(f"{path} ({how}): {e}")
            continue
        lib.score_version_number.restype = ctypes.c_int
        lib.score_version_number.argtypes = []
        have = lib.score_version_number()
        if have < _version_number(VERSION):
            tried.append(f"{path} ({how}): library version {have} is older than this "
                         f"package ({VERSION})")
            continue
        return lib
    raise ImportError("libscore: the shared library could not be loaded; tried\n  "
                      + "\n  ".join(tried)
                      + "\nInstall libscore (meson install, or the Debian package libscore0) "
                      "or set LIBSCORE_LIBRARY to the path of libscore.so (e.g. "
                      "build/src/libscore.so in a build tree).")


lib = _open()
#: path or name the library was loaded from
LIBRARY = lib._name

vp = ctypes.c_void_p
pvp = ctypes.POINTER(ctypes.c_void_p)
sz = ctypes.c_size_t
psz = ctypes.POINTER(ctypes.c_size_t)
f32p = ctypes.POINTER(ctypes.c_float)
f64p = ctypes.POINTER(ctypes.c_double)
i32p = ctypes.POINTER(ctypes.c_int32)
cint = ctypes.c_int
pint = ctypes.POINTER(ctypes.c_int)
i64 = ctypes.c_int64
pi64 = ctypes.POINTER(ctypes.c_int64)
u64 = ctypes.c_uint64
pu64 = ctypes.POINTER(ctypes.c_uint64)
dbl = ctypes.c_double
u32 = ctypes.c_uint32
cstr = ctypes.c_char_p
pcstr = ctypes.POINTER(ctypes.c_char_p)

#: score_trainer_progress_fn(step, total, loss, lr, user_data)
TRAIN_PROGRESS = ctypes.CFUNCTYPE(cint, sz, sz, dbl, dbl, vp)
#: score_sampler_progress_fn(step, total, t, user_data)
SAMPLER_PROGRESS = ctypes.CFUNCTYPE(cint, sz, sz, dbl, vp)

# name: (restype, argtypes). Functions returning an int status are checked by errors.check().
_SIGNATURES = {
    # core
    "score_version_string": (cstr, []),
    "score_blas_check": (cint, [ctypes.c_char_p, sz, pint]),
    "score_last_error_message": (cstr, []),
    "score_last_error_clear": (None, []),
    "score_status_name": (cstr, [cint]),
    "score_strerror": (cstr, [cint]),
    "score_free": (None, [vp]),
    # parameters
    "score_param_count": (sz, [cint]),
    "score_param_id_at": (cint, [cint, sz, pint]),
    "score_param_info": (cint, [cint, cint, pint, f64p, f64p, f64p]),
    "score_param_name": (cstr, [cint, cint]),
    "score_param_doc": (cstr, [cint, cint]),
    "score_param_from_name": (cint, [cint, cstr, pint]),
    # rng and toy data
    "score_rng_new": (cint, [pvp, cint, u64]),
    "score_rng_free": (None, [vp]),
    "score_rng_set_stream": (cint, [vp, u64]),
    "score_dataset_toy": (cint, [cstr, vp, sz, f32p]),
    "score_dataset_toy_dim": (sz, [cstr]),
    "score_dataset_toy_count": (sz, []),
    "score_dataset_toy_name": (cstr, [sz]),
    # schedules
    "score_schedule_new": (cint, [pvp, cint]),
    "score_schedule_new_preset": (cint, [pvp, cstr]),
    "score_schedule_preset_count": (sz, []),
    "score_schedule_preset_name": (cstr, [sz]),
    "score_schedule_clone": (cint, [pvp, vp]),
    "score_schedule_free": (None, [vp]),
    "score_schedule_prepare": (cint, [vp]),
    "score_schedule_name": (cstr, [vp]),
    "score_schedule_kind": (cint, [vp]),
    "score_schedule_alpha_sigma": (cint, [vp, sz, f64p, f64p, f64p]),
    "score_schedule_set_f64": (cint, [vp, cint, dbl]),
    "score_schedule_set_i64": (cint, [vp, cint, i64]),
    "score_schedule_get_f64": (cint, [vp, cint, f64p]),
    "score_schedule_get_i64": (cint, [vp, cint, pi64]),
    "score_schedule_prior_sample": (cint, [vp, vp, sz, sz, f32p]),
    # models
    "score_model_new": (cint, [pvp, cint, sz]),
    "score_model_new_mlp": (cint, [pvp, sz, sz, sz, cint, u64]),
    "score_model_new_gaussian": (cint, [pvp, vp, sz, f64p, f64p, f64p]),
    "score_model_new_gmm": (cint, [pvp, vp, sz, sz, f64p, f64p, f64p]),
    "score_model_prepare": (cint, [vp]),
    "score_model_clone": (cint, [pvp, vp]),
    "score_model_free": (None, [vp]),
    "score_model_kind": (cint, [vp]),
    "score_model_dim": (sz, [vp]),
    "score_model_param_count": (sz, [vp]),
    "score_model_params_get": (cint, [vp, f32p, sz]),
    "score_model_params_set": (cint, [vp, f32p, sz]),
    "score_model_set_f64": (cint, [vp, cint, dbl]),
    "score_model_set_i64": (cint, [vp, cint, i64]),
    "score_model_get_f64": (cint, [vp, cint, f64p]),
    "score_model_get_i64": (cint, [vp, cint, pi64]),
    "score_model_save": (cint, [vp, cstr]),
    "score_model_load": (cint, [pvp, cstr]),
    "score_model_forward": (cint, [vp, sz, f32p, f64p, f32p]),
    "score_model_new_energy": (cint, [pvp, sz]),
    "score_model_energy": (cint, [vp, sz, f32p, f64p, f64p]),
    "score_model_energy_cond": (cint, [vp, sz, f32p, f64p, i32p, f32p, f64p]),
    "score_model_forward_cond": (cint, [vp, sz, f32p, f64p, i32p, f32p, f32p]),
    "score_model_set_metadata": (cint, [vp, cstr, cstr]),
    "score_model_get_metadata": (cint, [vp, cstr, pcstr]),
    "score_model_metadata_count": (sz, [vp]),
    "score_model_metadata_key": (cint, [vp, sz, pcstr]),
    "score_model_analytic_logp": (cint, [vp, sz, f64p, f32p, f64p]),
    "score_model_analytic_sample": (cint, [vp, vp, dbl, sz, f32p]),
    "score_model_analytic_pf_map": (cint, [vp, dbl, dbl, sz, f32p, f32p]),
    # sde
    "score_sde_new": (cint, [pvp, vp, vp, cint]),
    "score_sde_free": (None, [vp]),
    "score_sde_set_model": (cint, [vp, vp]),
    "score_sde_set_f64": (cint, [vp, cint, dbl]),
    "score_sde_set_i64": (cint, [vp, cint, i64]),
    "score_sde_get_f64": (cint, [vp, cint, f64p]),
    "score_sde_get_i64": (cint, [vp, cint, pi64]),
    "score_sde_set_label": (cint, [vp, i64]),
    "score_sde_set_context": (cint, [vp, sz, f32p]),
    "score_sde_score": (cint, [vp, sz, f64p, f32p, f32p]),
    # losses and training
    "score_loss_new": (cint, [pvp, cint]),
    "score_loss_free": (None, [vp]),
    "score_loss_set_f64": (cint, [vp, cint, dbl]),
    "score_loss_set_i64": (cint, [vp, cint, i64]),
    "score_trainer_new": (cint, [pvp, vp, vp, vp, cint]),
    "score_trainer_free": (None, [vp]),
    "score_trainer_set_f64": (cint, [vp, cint, dbl]),
    "score_trainer_set_i64": (cint, [vp, cint, i64]),
    "score_trainer_get_f64": (cint, [vp, cint, f64p]),
    "score_trainer_get_i64": (cint, [vp, cint, pi64]),
    "score_trainer_set_data": (cint, [vp, sz, sz, f32p]),
    "score_trainer_set_labels": (cint, [vp, sz, i32p]),
    "score_trainer_set_context": (cint, [vp, sz, sz, f32p]),
    "score_trainer_step": (cint, [vp, f64p]),
    "score_trainer_run": (cint, [vp, sz, TRAIN_PROGRESS, vp]),
    "score_trainer_get_step": (cint, [vp, pu64]),
    "score_trainer_get_skipped": (cint, [vp, pu64]),
    "score_trainer_optimizer": (vp, [vp]),
    "score_trainer_ema": (vp, [vp]),
    "score_trainer_loss": (vp, [vp]),
    "score_trainer_ema_model": (cint, [vp, pvp]),
    "score_trainer_save": (cint, [vp, cstr]),
    "score_trainer_load": (cint, [vp, cstr]),
    "score_trainer_checkpoint_model": (cint, [pvp, cstr, cint]),
    "score_optimizer_set_f64": (cint, [vp, cint, dbl]),
    "score_optimizer_set_i64": (cint, [vp, cint, i64]),
    "score_ema_set_f64": (cint, [vp, cint, dbl]),
    "score_ema_set_i64": (cint, [vp, cint, i64]),
    # samplers
    "score_step_type_find": (vp, [cstr]),
    "score_step_type_count": (sz, []),
    "score_step_type_at": (vp, [sz]),
    "score_step_type_name": (cstr, [vp]),
    "score_step_new": (cint, [pvp, vp, sz]),
    "score_step_free": (None, [vp]),
    "score_step_set_f64": (cint, [vp, cint, dbl]),
    "score_step_set_i64": (cint, [vp, cint, i64]),
    "score_sampler_new": (cint, [pvp, vp, vp, sz]),
    "score_sampler_free": (None, [vp]),
    "score_sampler_set_i64": (cint, [vp, cint, i64]),
    "score_sampler_set_f64": (cint, [vp, cint, dbl]),
    "score_sampler_get_i64": (cint, [vp, cint, pi64]),
    "score_sampler_get_f64": (cint, [vp, cint, f64p]),
    "score_sampler_get_grid": (cint, [vp, vp, sz, f64p, psz]),
    "score_sampler_set_known": (cint, [vp, sz, vp, f32p]),
    "score_sampler_run": (cint, [vp, vp, sz, f32p, f32p, vp, SAMPLER_PROGRESS, vp]),
    "score_sampler_run_ex": (cint, [vp, vp, sz, sz, f32p, f32p, vp, SAMPLER_PROGRESS, vp]),
    "score_sampler_run_ex_f64": (cint, [vp, vp, sz, sz, f64p, f64p, vp, SAMPLER_PROGRESS, vp]),
    "score_sampler_get_nfe": (u64, [vp]),
    # likelihood
    "score_likelihood_new": (cint, [pvp, sz]),
    "score_likelihood_free": (None, [vp]),
    "score_likelihood_set_f64": (cint, [vp, cint, dbl]),
    "score_likelihood_set_i64": (cint, [vp, cint, i64]),
    "score_likelihood_logp": (cint, [vp, vp, sz, f32p, f64p, f64p, vp]),
    "score_likelihood_get_nfe": (u64, [vp]),
    # generative models
    "score_genmodel_new": (cint, [pvp, vp]),
    "score_genmodel_load": (cint, [pvp, cstr]),
    "score_genmodel_save": (cint, [vp, cstr]),
    "score_genmodel_free": (None, [vp]),
    "score_genmodel_dim": (sz, [vp]),
    "score_genmodel_model": (vp, [vp]),
    "score_genmodel_schedule": (vp, [vp]),
    "score_genmodel_get_i64": (cint, [vp, cint, pi64]),
    "score_genmodel_get_f64": (cint, [vp, cint, f64p]),
    "score_genmodel_fixed_t": (dbl, [vp]),
    "score_genmodel_set_fixed_t": (cint, [vp, dbl]),
    "score_genmodel_num_classes": (sz, [vp]),
    "score_genmodel_context_dim": (sz, [vp]),
    "score_genmodel_name": (cstr, [vp, cint, sz]),
    "score_genmodel_set_names": (cint, [vp, cint, sz, pcstr]),
    "score_genmodel_get_transform": (cint, [vp, f64p, f64p]),
    "score_genmodel_set_transform": (cint, [vp, f64p, f64p]),
    "score_genmodel_get_dequant": (cint, [vp, pint, f64p]),
    "score_genmodel_set_dequant": (cint, [vp, cint, dbl]),
    "score_genmodel_sde": (cint, [vp, pvp]),
    "score_genmodel_encode": (cint, [vp, sz, f32p, f32p]),
    "score_genmodel_decode": (cint, [vp, sz, f32p, f32p]),
    "score_genmodel_sample": (cint, [vp, vp, vp, sz, sz, f32p, vp, SAMPLER_PROGRESS, vp]),
    "score_genmodel_sample_langevin": (cint, [vp, vp, vp, sz, sz, sz, f32p, vp]),
    "score_genmodel_logp": (cint, [vp, vp, vp, sz, sz, f32p, f64p, f64p, vp]),
    "score_genmodel_check_compatible": (cint, [vp, vp]),
    "score_genmodel_new_cfg": (cint, [pvp, vp, vp, dbl]),
    "score_genmodel_is_classifier": (cint, [vp]),
    "score_genmodel_set_classifier": (cint, [vp, vp, vp, dbl]),
}

for _name, (_res, _args) in _SIGNATURES.items():
    _f = getattr(lib, _name)
    _f.restype = _res
    _f.argtypes = _args
del _name, _res, _args, _f
