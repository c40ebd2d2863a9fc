"""Finite-difference stencils and Richardson extrapolation: the arithmetic, no evaluation.

* :func:`fornberg_weights` computes finite-difference weights for any
  derivative order on any set of offsets (Fornberg 1988), which is how the
  numeric backend builds every stencil, one-sided or central, of any order;
* ``_stencil_offsets`` and ``_order_for`` choose a stencil's integer offsets
  and its accuracy order;
* ``_extrapolation_weights`` gives the Richardson weights that cancel the
  leading terms of an error series over a sequence of steps.

Pure NumPy: nothing here calls the user's function or traces anything.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ...errors import InvalidArgument


def fornberg_weights(offsets: Any, order: int, x0: float = 0.0) -> np.ndarray:
    """Weights of the ``order``-th derivative at ``x0`` from values at ``offsets``.

    Fornberg's recurrence ("Generation of finite difference formulas on
    arbitrarily spaced grids", Math. Comp. 51, 1988): exact for polynomials
    of degree ``len(offsets) - 1``, numerically stable, any spacing. With
    ``offsets`` of shape ``(n, k)`` it computes ``k`` independent stencils at
    once (one per column), which the backend uses for the effective, rounded
    offsets of many directions.

    Args:
        offsets: the ``n`` distinct nodes (relative positions), shape ``(n,)``
            or ``(n, k)``.
        order: the derivative order, ``0 <= order < n``.
        x0: where the derivative is taken.

    Returns:
        The weights, shaped like ``offsets``: ``sum(w * f(offsets))``
        approximates ``f^(order)(x0)``.

    Example:
        >>> from diffkit.numeric_tools import fornberg_weights
        >>> fornberg_weights([-1, 0, 1], 1).tolist()
        [-0.5, 0.0, 0.5]
        >>> [round(float(w), 6) for w in fornberg_weights([-2, -1, 0, 1, 2], 2)]
        [-0.083333, 1.333333, -2.5, 1.333333, -0.083333]
        >>> fornberg_weights([0, 1, 2], 1).tolist()
        [-1.5, 2.0, -0.5]
    """
    x = np.asarray(offsets)
    x = x.astype(np.complex128 if np.iscomplexobj(x) else np.float64)  # complex nodes work too
    n = x.shape[0]
    m = int(order)
    if not 0 <= m < n:
        raise InvalidArgument(f"fornberg_weights: derivative order {order} needs more than {m} nodes, got {n}")
    rest = x.shape[1:]
    c = np.zeros((n, m + 1) + rest, dtype=x.dtype)
    c1 = np.ones(rest, dtype=x.dtype)
    c4 = x[0] - x0
    c[0, 0] = 1.0
    for i in range(1, n):
        mn = min(i, m)
        c2 = np.ones(rest, dtype=x.dtype)
        c5 = c4
        c4 = x[i] - x0
        for j in range(i):
            c3 = x[i] - x[j]
            c2 = c2 * c3
            if j == i - 1:
                for k in range(mn, 0, -1):
                    c[i, k] = c1 * (k * c[i - 1, k - 1] - c5 * c[i - 1, k]) / c2
                c[i, 0] = -c1 * c5 * c[i - 1, 0] / c2
            for k in range(mn, 0, -1):
                c[j, k] = (c4 * c[j, k] - k * c[j, k - 1]) / c3
            c[j, 0] = c4 * c[j, 0] / c3
        c1 = c2
    return c[:, m]


def _stencil_offsets(n: int, kind: str, p: int) -> np.ndarray:
    """Integer offsets of the stencil of the ``n``-th derivative with accuracy order ``p``."""
    if kind == "central":
        m = (n + p - 1) // 2
        offs = np.arange(-m, m + 1, dtype=np.float64)
        return offs[offs != 0] if n % 2 else offs  # odd derivatives: the centre weighs 0
    offs = np.arange(0, n + p, dtype=np.float64)
    return offs if kind == "forward" else -offs[::-1]


def _order_for(kind: str, order: int | None) -> int:
    if order is None:
        return 2 if kind == "central" else 1
    p = int(order)
    if p < 1:
        raise InvalidArgument(f"order (the accuracy order) must be >= 1, got {order}")
    if kind == "central" and p % 2:
        p += 1  # central stencils are symmetric: their order is even
    return p


def _extrapolation_weights(hs: np.ndarray, exps: Sequence[float]) -> np.ndarray:
    """Weights ``c`` with ``sum(c) == 1`` that cancel the terms ``h**e`` for each ``e`` in ``exps``."""
    k = len(exps)
    r = hs / hs.max()
    A = np.ones((k + 1, k + 1))
    for i, e in enumerate(exps):
        A[i + 1] = r ** e
    rhs = np.zeros(k + 1)
    rhs[0] = 1.0
    return np.linalg.solve(A, rhs)


__all__ = ["fornberg_weights"]
