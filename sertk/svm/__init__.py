"""sertk's ν-support-vector classifier: libsvm's ν-SVC, compiled, with BLAS kernels.

Three layers, as scikit-learn's ``sklearn/svm``: the C core in ``csrc/`` (``sertk_nusvm.h``; no Python), the thin Cython
wrapper :mod:`sertk.svm._nusvm`, and the estimator :class:`NuSVC` (``_classes.py``) with its file format
(``_io.py``).  See ``docs/svm.md``.
"""

from __future__ import annotations

try:
    from sertk.svm import _nusvm  # noqa: F401 - the compiled core
except ImportError as exc:  # pragma: no cover - exercised only in a checkout that was never built
    raise ImportError(
        "the compiled ν-SVM core is not built; run `pip install -e .` (or `python setup.py build_ext --inplace`) "
        f"in the sertk checkout to compile sertk.svm._nusvm. Original error: {exc}"
    ) from exc

from sertk.svm._classes import NuSVC, RowCacheWarning

__all__ = ["NuSVC", "RowCacheWarning"]
