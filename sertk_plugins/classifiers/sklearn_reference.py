"""scikit-learn classifiers as reference plugins: libsvm's ν-SVC and C-SVC, and logistic regression.

They are the yardstick our own ν-SVM (``nusvm``) is checked against, and honest baselines in their own right.
``sklearn-nusvc`` defaults to the paper's ν = 0.1 (scikit-learn's own default is 0.5). Note that scikit-learn's
NuSVC accepts ``class_weight`` but its solver ignores it (scikit-learn issue #30332).
"""

from __future__ import annotations

import inspect

from sklearn.linear_model import LogisticRegression
from sklearn.svm import SVC, NuSVC

from sertk import hookimpl

# scikit-learn 1.9 deprecated `probability` (default "deprecated"); keep whatever the installed version uses
_PROBABILITY_DEFAULT = inspect.signature(NuSVC.__init__).parameters["probability"].default


class SklearnNuSVC(NuSVC):
    """scikit-learn's NuSVC (libsvm), with the paper's ν = 0.1 as the default."""

    name = "sklearn-nusvc"
    description = "scikit-learn NuSVC (libsvm ν-SVC), default nu=0.1, RBF kernel"

    def __init__(self, *, nu=0.1, kernel="rbf", degree=3, gamma="scale", coef0=0.0, shrinking=True,
                 probability=_PROBABILITY_DEFAULT, tol=1e-3, cache_size=200, class_weight=None, verbose=False, max_iter=-1,
                 decision_function_shape="ovr", break_ties=False, random_state=None):
        super().__init__(nu=nu, kernel=kernel, degree=degree, gamma=gamma, coef0=coef0, shrinking=shrinking,
                         probability=probability, tol=tol, cache_size=cache_size, class_weight=class_weight,
                         verbose=verbose, max_iter=max_iter, decision_function_shape=decision_function_shape,
                         break_ties=break_ties, random_state=random_state)


class SklearnSVC(SVC):
    """scikit-learn's C-SVC (libsvm)."""

    name = "sklearn-svc"
    description = "scikit-learn SVC (libsvm C-SVC), RBF kernel"


class SklearnLogisticRegression(LogisticRegression):
    """Multinomial logistic regression: a linear baseline."""

    name = "logreg"
    description = "scikit-learn LogisticRegression (linear baseline)"

    def __init__(self, *, C=1.0, max_iter=2000, class_weight=None, tol=1e-4, random_state=None):
        super().__init__(C=C, max_iter=max_iter, class_weight=class_weight, tol=tol, random_state=random_state)


@hookimpl
def sertk_register_classifiers(register):
    register(SklearnNuSVC)
    register(SklearnSVC)
    register(SklearnLogisticRegression)
