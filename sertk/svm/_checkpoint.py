"""Resumable fits: each solved one-vs-one pair of a ν-SVM fit, and each unfinished pair's solver, kept in a file, so
that an interrupted fit starts again where it stopped (``NuSVC(checkpoint=path)``).

A pair's solution depends only on its two classes' samples, weights and the solver's parameters, so a fit of the
same data and parameters can take the pairs an earlier one solved and solve only the rest; the model is the same
as an uninterrupted fit's, bit for bit (tested). A pair of a large corpus can itself take hours (120 000 samples
from a row cache), so a pair not yet solved is kept too, as its solver's state at the top of an SMO iteration
(``sertk_nusvm_state``: alpha, the gradients and the positions shrinking made), written by the core every
``STATE_EVERY_S`` seconds and when the fit is cancelled; a resumed fit goes on from there along the same path. The
file is an ``.npz`` (no pickle) holding a fingerprint of all that the solution depends on; a file whose fingerprint
differs is refused, never overwritten. It is written to a temporary file first and renamed, so an interruption
leaves the previous version whole.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from sertk.atomic import atomic_open

from ._nusvm import STATE_ARRAYS, STATE_INTS

FORMAT = "sertk-nusvm-checkpoint/1"
_ARRAYS = ("done", "rho", "n_iter", "timed_out", "prob_a", "prob_b")
# an unfinished pair p's solver: state{p}_<key> for each key of _nusvm.STATE_ARRAYS (a file of an earlier sertk
# without them resumes at pair starts)
# how often the core writes an unfinished pair's solver state, so an interruption (a killed job) loses at most this
STATE_EVERY_S = 60.0


def fingerprint(X: np.ndarray, y: np.ndarray, weight: np.ndarray, classes: np.ndarray, params: dict[str, Any],
                prob_perm: np.ndarray | None) -> str:
    """A hash of what every pair's solution depends on: the training arrays as the core sees them, the class
    labels, the solver's parameters and the fold assignment of ``probability``. Threads and ``cache_size`` are
    left out: they never change the path."""
    h = hashlib.blake2b(digest_size=20)
    h.update(FORMAT.encode())
    for a in (X, y, weight) + ((prob_perm,) if prob_perm is not None else ()):
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.data.cast("B"))  # contiguous now: its bytes without a copy
    h.update(repr([c.item() if isinstance(c, np.generic) else c for c in classes]).encode())
    h.update(repr(sorted(params.items())).encode())
    return h.hexdigest()


def empty_pairs(counts: np.ndarray) -> dict[str, Any]:
    """The arrays ``_nusvm.fit(pairs=)`` writes into, for class sizes ``counts``: no pair solved yet."""
    k = len(counts)
    P = k * (k - 1) // 2
    return {"done": np.zeros(P, np.int32), "rho": np.zeros(P), "n_iter": np.zeros(P, np.int32),
            "timed_out": np.zeros(P, np.int32), "prob_a": np.zeros(P), "prob_b": np.zeros(P),
            "coef": [np.zeros(int(counts[i] + counts[j])) for i in range(k) for j in range(i + 1, k)],
            "states": [None] * P, "state_every_s": STATE_EVERY_S}


def load(path: Path, print_: str, counts: np.ndarray) -> dict[str, Any]:
    """The pairs saved at ``path`` for this fingerprint, or none solved if there is no file yet."""
    pairs = empty_pairs(counts)
    if not path.exists():
        return pairs
    try:
        with np.load(path, allow_pickle=False) as f:
            saved = {key: f[key] for key in f.files}
    except (OSError, ValueError) as exc:
        raise ValueError(f"checkpoint {str(path)!r} cannot be read as a sertk ν-SVM checkpoint ({exc}); remove it "
                         "or give another checkpoint path") from None
    if str(saved.get("format", "")) != FORMAT:
        raise ValueError(f"checkpoint {str(path)!r} is not a sertk ν-SVM checkpoint ({FORMAT}); remove it or give "
                         "another checkpoint path")
    if str(saved.get("fingerprint", "")) != print_:
        raise ValueError(f"checkpoint {str(path)!r} holds a fit of other data or other parameters; it is left as it "
                         "is: remove it to start afresh, or give another checkpoint path")
    coef = saved.get("coef")
    sizes = [len(c) for c in pairs["coef"]]
    if coef is None or coef.shape != (sum(sizes),) or any(saved.get(k) is None or saved[k].shape != pairs[k].shape
                                                           for k in _ARRAYS):
        raise ValueError(f"checkpoint {str(path)!r} is damaged (its arrays do not fit this training set); remove it")
    for key in _ARRAYS:
        pairs[key][:] = saved[key]
    start = 0
    for p, size in enumerate(sizes):
        pairs["coef"][p][:] = coef[start:start + size]
        start += size
        if not pairs["done"][p] and f"state{p}_ints" in saved:
            pairs["states"][p] = _state(path, saved, p, size)
    return pairs


def _state(path: Path, saved: dict[str, np.ndarray], p: int, size: int) -> dict[str, np.ndarray]:
    """Pair p's solver state as saved, checked to be one of a pair of ``size`` samples (the core checks the positions
    again before it reads them)."""
    state = {key: saved[f"state{p}_{key}"] for key in STATE_ARRAYS if f"state{p}_{key}" in saved}
    ok = len(state) == len(STATE_ARRAYS) and all(
        a.dtype == dtype and a.shape == (size if length is None else length,)
        for a, (dtype, length) in zip(state.values(), STATE_ARRAYS.values()))
    if ok:
        ints = dict(zip(STATE_INTS, state["ints"].tolist()))
        ok = (ints["iter"] >= 0 and 0 <= ints["active_size"] <= size and 1 <= ints["counter"] <= 1001
              and ints["unshrink"] in (0, 1) and ints["max_valid"] in (0, 1)
              and -1 <= ints["ip"] < size and -1 <= ints["in"] < size
              and all(np.isfinite(state[key]).all() for key in ("alpha", "G", "Gbar"))
              and np.array_equal(np.sort(state["aset"]), np.arange(size)))
    if not ok:
        raise ValueError(f"checkpoint {str(path)!r} is damaged (the solver state of its unfinished pair {p} is not one "
                         "of this training set); remove it")
    return state


def save(path: Path, print_: str, pairs: dict[str, Any], solved: list[int]) -> None:
    """Write the pairs in ``solved`` (those the core has said are complete: the others' arrays may be half
    written while it runs) and the solver states of the others (``pairs["states"]``, copies the core handed
    over whole) to a temporary file beside ``path``, then rename it over ``path``."""
    done = np.zeros_like(pairs["done"])
    done[list(solved)] = 1
    arrays = {key: pairs[key] for key in _ARRAYS if key != "done"}
    for p, state in enumerate(pairs.get("states") or []):
        if state is not None and not done[p]:  # a solved pair's last state is of no more use
            arrays.update({f"state{p}_{key}": state[key] for key in STATE_ARRAYS})
    with atomic_open(path, "wb") as fh:
        np.savez(fh, format=np.array(FORMAT), fingerprint=np.array(print_), done=done,
                 coef=np.concatenate(pairs["coef"]), **arrays)
