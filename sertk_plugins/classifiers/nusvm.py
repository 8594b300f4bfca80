"""Built-in classifier plugin ``nusvm``: sertk's compiled ν-SVM (:class:`sertk.svm.NuSVC`)."""

from __future__ import annotations

from sertk import hookimpl
from sertk.svm import NuSVC


class NuSVMClassifier(NuSVC):
    """sertk's ν-SVM: libsvm's ν-SVC (same model as scikit-learn's NuSVC), compiled, with BLAS kernels."""

    name = "nusvm"
    description = "ν-SVM (libsvm's ν-SVC, compiled with BLAS kernels; the same model as scikit-learn's NuSVC)"


@hookimpl
def sertk_register_classifiers(register) -> None:
    register(NuSVMClassifier)
