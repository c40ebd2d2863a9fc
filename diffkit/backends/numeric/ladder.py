"""Richardson extrapolation over a ladder of steps ``h0 / 2**j``, with error estimates.

Each level of the ladder is a finite-difference or complex-contour estimate
(:mod:`.lines`); the Richardson table over the levels is trusted only once the
steps behind it are in the asymptotic regime, and the best trusted entry is
kept, per direction and output element.
"""

from __future__ import annotations

import math

import numpy as np

from .evaluator import _Evaluator
from .lines import (
    _contour_level,
    _contour_slope,
    _contour_values,
    _fd_level,
    _fit_domain,
    _grid_deltas,
    _inside_kinks,
    _Lines,
    _t_of,
)
from .stencils import _extrapolation_weights

_RATIO = 2.0
"""Step ratio of the Richardson sequence (numdifftools' default)."""

_MAX_LEVELS = 16
"""Steps in a Richardson sequence at most (down to 1/2**15 of the first, so a
function that varies on a scale of 1e-4 of max(|x|, 1) is still resolved); the
search stops once round-off dominates, for smooth functions after 4 to 6."""

_ASYMPTOTIC_SLACK = 3.0
"""Successive differences of the base estimates shrink by 2**e in the asymptotic
regime; a ratio within this factor of it counts as asymptotic. Tight enough that
a pre-asymptotic sequence rarely passes by chance at two levels in a row."""

_MAX_EXTRAP = 4
"""Richardson extrapolations at most: beyond that the weights amplify round-off more
than they remove truncation."""

_RICHARDSON_SAFETY = 2.0


def _ladder(ev: _Evaluator, U: np.ndarray, n: int, kind: str, p: int, h0: np.ndarray,
            user_step: bool, slope: np.ndarray | None = None) -> _Lines:
    """Richardson extrapolation over the steps ``h0 / 2**j``, per direction and output element.

    ``kind`` is ``"central"``, ``"forward"``, ``"backward"`` (finite
    differences) or ``"contour"`` (complex, n >= 2). Each new step adds a row
    to the Richardson table. An entry is *trusted* only once the steps behind
    it are in the asymptotic regime: successive differences of the base
    estimates shrink by the expected factor ``2**e`` (or are at round-off).
    Before that, two values can agree by chance (an oscillating function
    sampled at steps larger than its period), the classic way Richardson
    extrapolation fails. Each trusted entry gets an error estimate: how much
    the last extrapolation and the last step changed it, plus the round-off
    bound ``sum |weights| * eps * |values|``; the smallest wins, per element.
    A direction stops once its estimate stops improving for two steps or
    reaches round-off; one where nothing was ever trusted reports its best
    value with the spread of the last estimates as its error.

    On a contour, ``slope`` (the exact first derivative from the complex step)
    adds a check per level: the same points must reproduce it. A radius far
    beyond the function's scale can give a consistent but wrong sequence
    (``tanh(20000 x)`` is exactly +-1, imaginary part 0, on a circle of
    radius 0.1: every estimate is 0); it cannot reproduce ``f'``.
    """
    k = U.shape[0]
    contour = kind == "contour"
    kinds = [kind] * k
    notes: list[str] = []
    h = h0.astype(np.float64).copy()
    f0 = delta0 = None
    if not contour:
        f0 = ev.f0()
        h, notes = _inside_kinks(ev, U, n, kinds, p, h, user_step)
        h, kinds, fit_notes = _fit_domain(ev, U, n, kinds, p, h, user_step, 1.0, _MAX_LEVELS)
        notes += fit_notes
        # displacements on the floating-point grid, exactly halved at every level
        delta0 = _grid_deltas(ev, U, h, n, kinds, p, 1.0, _MAX_LEVELS)
        h = _t_of(U, delta0)
    # exponents of the error series of the base estimates, per direction
    if contour:
        first = np.full(k, 2.0 * n)
        stride = np.full(k, 2.0 * n)
    else:
        central = np.array([kd == "central" for kd in kinds])
        first = np.full(k, float(p))
        stride = np.where(central, 2.0, 1.0)
    families = sorted({(a, b) for a, b in zip(first, stride)})
    recent: list[np.ndarray] = []     # per direction, its last three base estimates
    D_lv: list[np.ndarray] = []
    R_lv: list[np.ndarray] = []
    ok_lv: list[np.ndarray] = []      # per level: asymptotic (or at round-off) per element
    T_prev: list[np.ndarray] = []
    # best trusted entry and best entry at all, per element (sized at the first level)
    best_v = best_e = best_h = any_v = any_e = any_h = np.empty((0, 0))
    active = np.ones(k, dtype=bool)
    stale = np.zeros(k, dtype=int)
    last = np.full(k, np.inf)
    expected = _RATIO ** first        # how much successive differences shrink
    for j in range(_MAX_LEVELS):
        hj = h / _RATIO ** j
        idx = np.flatnonzero(active)
        sane = np.ones((k, 1), dtype=bool)
        if contour:
            got = _contour_values(ev, U[idx], n, hj[idx])
            D, R = _contour_level(ev, U[idx], n, hj[idx], got)
            if slope is not None:
                a1, a1_noise = _contour_slope(ev, got, n)
                # the slope's aliasing error, in function units (times r), must stay below
                # the n-th order term itself, or within 10% of the slope
                allowed = 0.1 * np.abs(slope[idx]) + np.abs(D) * hj[idx, None] ** (n - 1) / math.factorial(n)
                sane = np.ones((k, D.shape[1]), dtype=bool)
                sane[idx] = np.abs(a1 - slope[idx]) <= allowed + a1_noise
        else:
            assert f0 is not None and delta0 is not None
            D, R = _fd_level(ev, U[idx], n, [kinds[b] for b in idx], p, delta0[idx] / _RATIO ** j, f0)
        M = D.shape[1]
        Df = np.full((k, M), np.nan)
        Rf = np.full((k, M), np.nan)
        Df[idx], Rf[idx] = D, R
        D_lv.append(Df)
        R_lv.append(Rf)
        if not recent:
            recent = [Df.copy() for _ in range(3)]
        recent = recent[1:] + [np.where(active[:, None], Df, recent[-1])]
        if j == 0:
            best_v, best_e = Df.copy(), np.full((k, M), np.inf)
            best_h = np.broadcast_to(hj[:, None], (k, M)).copy()
            any_v, any_e, any_h = best_v.copy(), best_e.copy(), best_h.copy()
        # is this level in the asymptotic regime? (needs two differences)
        if j >= 2:
            d1 = np.abs(D_lv[j - 1] - D_lv[j - 2])
            d2 = np.abs(Df - D_lv[j - 1])
            noise = 4.0 * (Rf + R_lv[j - 1] + R_lv[j - 2])
            with np.errstate(divide="ignore", invalid="ignore"):
                rho = d1 / d2
            e = expected[:, None]
            ok = ((rho > e / _ASYMPTOTIC_SLACK) & (rho < e * _ASYMPTOTIC_SLACK)) | (np.maximum(d1, d2) <= noise)
        else:
            ok = np.zeros((k, M), dtype=bool)
        ok_lv.append(ok & sane)
        T_row = [Df]
        E_row = [np.abs(Df - D_lv[j - 1]) + Rf if j >= 1 else np.full((k, M), np.inf)]
        for kk in range(1, min(j, _MAX_EXTRAP) + 1):
            window = list(range(j - kk, j + 1))
            hs = _RATIO ** -np.array(window, dtype=np.float64)
            T = np.empty((k, M))
            Rk = np.empty((k, M))
            for a, b in families:
                sel = (first == a) & (stride == b)
                c = _extrapolation_weights(hs, [a + b * i for i in range(kk)])
                T[sel] = sum(ci * D_lv[m][sel] for ci, m in zip(c, window))
                Rk[sel] = sum(abs(ci) * R_lv[m][sel] for ci, m in zip(c, window))
            diff = np.abs(T - T_row[kk - 1])
            if kk < len(T_prev):
                diff = np.maximum(diff, np.abs(T - T_prev[kk]))
            T_row.append(T)
            E_row.append(diff + Rk)
        T_prev = T_row
        for kk, (T, E) in enumerate(zip(T_row, E_row)):
            good = np.isfinite(E)
            take = good & (E < any_e)
            any_v, any_e = np.where(take, T, any_v), np.where(take, E, any_e)
            any_h = np.where(take, hj[:, None], any_h)
            # trusted: every level whose ratio the window's estimates rely on looked asymptotic
            # (two consecutive ratio tests: one alone passes by chance too often)
            trusted = good & (j >= 3)
            for m in range(max(2, min(j - kk, j - 1)), j + 1):
                trusted &= ok_lv[m]
            take = trusted & (E < best_e)
            best_v, best_e = np.where(take, T, best_v), np.where(take, E, best_e)
            best_h = np.where(take, hj[:, None], best_h)
        # stopping, per direction: converged (trusted and round-off reached) or stalled
        valid = np.isfinite(Df)
        cur = np.where(np.any(valid, axis=1),
                       np.max(np.where(valid, best_e, -np.inf), axis=1, initial=-np.inf), np.inf)
        floor = np.max(np.where(valid, Rf, 0.0), axis=1, initial=0.0)
        stale = np.where(cur < 0.5 * last, 0, stale + 1)
        last = np.minimum(last, cur)
        if j >= 3:
            settled = np.isfinite(cur) & ((stale >= 2) | (cur <= 2.0 * floor))
            active &= ~settled
        if not np.any(active):
            break
    # never trusted: the best untrusted value, with the spread of the last base estimates
    spread = np.max(np.abs(np.array(recent) - any_v[None]), axis=0)
    lost = ~np.isfinite(best_e)
    value = np.where(lost, any_v, best_v)
    error = np.where(lost, np.maximum(any_e, spread), best_e)
    step = np.where(lost, any_h, best_h)
    if np.any(lost & np.isfinite(value)):
        notes.append("the Richardson sequence never reached its asymptotic regime for some elements "
                     "(the function varies on a scale below the smallest step): the error is the spread "
                     "of the last estimates")
    error = np.where(np.isfinite(error) | ~np.isfinite(value), error, np.abs(value))
    # Differences of successive extrapolants estimate the error to within a small factor only:
    # the thorough property run found a true error 1.56x the estimate (round-off dominated,
    # near 1e-13); doubling keeps the estimate a bound without making it loose.
    error = _RICHARDSON_SAFETY * error
    return _Lines(value, error, step, ["complex" if contour else kd for kd in kinds], notes,
                  lost & np.isfinite(value))
