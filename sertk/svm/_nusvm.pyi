"""Type stub of the compiled wrapper :mod:`sertk.svm._nusvm` (see ``_nusvm.pyx``)."""

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

KERNELS: dict[str, int]
ABI_VERSION: int
MIN_CACHE_ROWS: int
STATE_INTS: tuple[str, ...]
STATE_ARRAYS: dict[str, tuple[type[np.generic], int | None]]

class InfeasibleNuError(ValueError): ...
class KernelBudgetError(ValueError): ...
class FitCancelledError(RuntimeError): ...

class _Event(Protocol):  # threading.Event, or anything with is_set()
    def is_set(self) -> bool: ...

def fit(
    X: npt.NDArray[np.float64],
    y: npt.NDArray[np.int32],
    weight: npt.NDArray[np.float64],
    n_classes: int,
    *,
    kernel: str = ...,
    gamma: float = ...,
    nu: float = ...,
    tol: float = ...,
    shrinking: bool = ...,
    max_iter: int = ...,
    cache_bytes: float = ...,
    n_threads: int = ...,
    prob_perm: npt.NDArray[np.int32] | None = ...,
    cancel: _Event | None = ...,
    progress: Callable[[dict[str, int]], object] | None = ...,
    pairs: dict[str, Any] | None = ...,
    on_solved: Callable[[list[int]], object] | None = ...,
    on_state: Callable[[dict[int, dict[str, npt.NDArray[Any]] | None]], object] | None = ...,
) -> dict[str, Any]: ...
def decision_function(
    X: npt.NDArray[np.float64],
    support_vectors: npt.NDArray[np.float64],
    n_support: npt.NDArray[np.int32],
    dual_coef: npt.NDArray[np.float64],
    rho: npt.NDArray[np.float64],
    *,
    kernel: str = ...,
    gamma: float = ...,
    n_threads: int = ...,
) -> npt.NDArray[np.float64]: ...
def predict(
    X: npt.NDArray[np.float64],
    support_vectors: npt.NDArray[np.float64],
    n_support: npt.NDArray[np.int32],
    dual_coef: npt.NDArray[np.float64],
    rho: npt.NDArray[np.float64],
    *,
    kernel: str = ...,
    gamma: float = ...,
    n_threads: int = ...,
    screen: bool = ...,
) -> tuple[npt.NDArray[np.int32], int]: ...
def vote(dec: npt.NDArray[np.float64], n_classes: int) -> npt.NDArray[np.int32]: ...
def proba(
    dec: npt.NDArray[np.float64],
    n_classes: int,
    prob_a: npt.NDArray[np.float64],
    prob_b: npt.NDArray[np.float64],
) -> npt.NDArray[np.float64]: ...
def max_feasible_nu(
    y: npt.NDArray[np.int32], weight: npt.NDArray[np.float64], n_classes: int
) -> tuple[float, tuple[int, int]]: ...
def min_cache_bytes(y: npt.NDArray[np.int32], n_classes: int, n_threads: int = ...) -> float: ...
def plan_kernel(
    counts: npt.NDArray[np.int32], *, kernel: str = ..., cache_bytes: float = ..., n_threads: int = ...
) -> dict[str, Any]: ...
def sigmoid_train(dec: npt.NDArray[np.float64], label: npt.NDArray[np.int8]) -> tuple[float, float]: ...
def _rbf_values(
    dot: npt.NDArray[np.float64],
    sq: npt.NDArray[np.float64],
    sqi: float,
    gamma: float,
    *,
    reference: bool = ...,
    f64: bool = ...,
) -> npt.NDArray[Any]: ...
def _rowdot(
    A: npt.NDArray[np.float64], X: npt.NDArray[np.float64], f32: bool = ...
) -> npt.NDArray[np.float64]: ...
def _vexp_enabled() -> bool: ...
