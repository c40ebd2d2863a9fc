"""Richardson extrapolation over a ladder of steps ``h0 / 2**j``, with error estimates.

Each level of the ladder is a finite-difference or complex-contour estimate
(:mod:`.lines`); the Richardson table over the levels is trusted only once the
steps behind it are in the asymptotic regime, and the best trusted entry is
kept, per direction and output element.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from .evaluator import _Evaluator
from .lines import (
    _contour_level,
    _contour_slope,
    _contour_values,
    _fd_level,
    _fit_domain,
    _grid_delta,
    _grid_deltas,
    _inside_kinks,
    _Lines,
    _measured_noise,
    _noise_bound,
    _shifted_centers,
    _shifted_noise,
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

_NOISE_BREAK = 16.0
"""A level that breaks the asymptotic regime after an entry was trusted: if its
difference stays within this factor of the round-off bound, it is noise the bound
missed (the trusted entry keeps its value, its error grows to the difference);
beyond, the regime was never asymptotic (values agreeing by chance at steps longer
than the function's scale, as a ripple sampled at multiples of its period), and
every entry trusted before it is forgotten."""


def _ladder(ev: _Evaluator, U: np.ndarray, n: int, kind: str, p: int, h0: np.ndarray,
            user_step: bool, slope: np.ndarray | None = None, estimate: bool = True) -> _Lines:
    """Richardson extrapolation over the steps ``h0 / 2**j``, per direction and output element.

    ``kind`` is ``"central"``, ``"forward"``, ``"backward"`` (finite
    differences) or ``"contour"`` (complex, n >= 2); see :func:`_richardson`.
    Finite differences first keep each stencil on one side of the nearest
    kink and inside the domain. Along a direction where ``x`` sits on a kink
    (``abs`` at 0, the comparison of a ``np.where`` at its threshold), no
    stencil can: the derivative from the right and the one from the left are
    computed apart (:func:`_across_kink`).

    ``estimate=False`` (the plain operators) leaves out the evaluations that
    only sharpen the error estimate (noise measured next to ``x``, shifted
    contours); the value is the same either way.
    """
    if kind == "contour":
        return _contour_ladder(ev, U, n, h0, user_step, slope, estimate)
    kinds = [kind] * U.shape[0]
    h, at = _inside_kinks(ev, U, n, kinds, p, h0.astype(np.float64).copy(), user_step)
    if kind == "central" and np.any(at):
        return _across_kink(ev, U, n, p, h, at, estimate)
    lines = _fd_ladder(ev, U, n, kinds, p, h, user_step, estimate)
    if np.any(at):  # one-sided stencils asked for by name, across a kink
        lines.notes.append("x sits on a kink: the one-sided stencils cross it, and their error estimate is no bound")
        lines.unbounded = lines.unbounded | at[:, None]
    return lines


def _fd_ladder(ev: _Evaluator, U: np.ndarray, n: int, kinds: list[str], p: int, h: np.ndarray,
               user_step: bool, estimate: bool = True) -> _Lines:
    """Finite differences along ``U`` over the steps ``h / 2**j``, stencils fitted to the domain.

    With ``estimate``, the error also covers the noise of the function's values
    as measured next to ``x`` (:func:`~.lines._measured_noise`: values computed
    with cancellation carry more than the few ulps the round-off bound
    assumes). (The round-off that all steps share, which the complex step and
    contour measure with :func:`~.lines._shifted_noise`, is of the order of an
    ulp of ``x`` times ``f''``: far below a difference quotient's own.)
    """
    f0 = ev.f0()
    h, kinds, notes = _fit_domain(ev, U, n, kinds, p, h, user_step, 1.0, _MAX_LEVELS)
    # displacements on the floating-point grid, exactly halved at every level
    delta0 = _grid_deltas(ev, U, h, n, kinds, p, 1.0, _MAX_LEVELS)
    h = _t_of(U, delta0)
    noise = _measured_noise(ev) if estimate else None

    def level(idx: np.ndarray, j: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        sub = [kinds[b] for b in idx]
        D, R = _fd_level(ev, U[idx], n, sub, p, delta0[idx] / _RATIO ** j, f0)
        Rn = None if noise is None else _noise_bound(ev, U[idx], n, sub, p, delta0[idx] / _RATIO ** j, noise)
        return D, R, np.ones(D.shape, dtype=bool), Rn

    central = np.array([kd == "central" for kd in kinds])
    lines = _richardson(level, U.shape[0], h, np.full(U.shape[0], float(p)), np.where(central, 2.0, 1.0))
    lines.kinds = kinds
    lines.notes = notes + lines.notes
    lines.dirs = delta0 / np.where(h != 0, h, 1.0)[:, None]
    return lines


def _contour_ladder(ev: _Evaluator, U: np.ndarray, n: int, r0: np.ndarray, user_step: bool,
                    slope: np.ndarray | None, estimate: bool = True) -> _Lines:
    """The n-th derivative on complex contours of radii ``r0 / 2**j`` (see :func:`_richardson`).

    On a contour, ``slope`` (the exact first derivative from the complex step)
    adds a check per level: the same points must reproduce it. A radius far
    beyond the function's scale can give a consistent but wrong sequence
    (``tanh(20000 x)`` is exactly +-1, imaginary part 0, on a circle of
    radius 0.1: every estimate is 0); it cannot reproduce ``f'``.
    """
    k = U.shape[0]
    a0 = None
    dirs = U.astype(np.float64).copy()
    if n == 2:
        # the points x +- a + i a with a on a grid that every level halves exactly: one
        # direction for all radii (rounded per component, so along dirs rather than U)
        a0 = _grid_delta(ev, U, r0 / math.sqrt(2.0), 1.0, _MAX_LEVELS)
        t0 = _t_of(U, a0)
        r0 = math.sqrt(2.0) * t0
        dirs = a0 / np.where(t0 != 0, t0, 1.0)[:, None]

    def level(idx: np.ndarray, j: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, None]:
        rj = r0[idx] / _RATIO ** j
        got = _contour_values(ev, U[idx], n, rj, None if a0 is None else a0[idx] / _RATIO ** j)
        D, R = _contour_level(ev, U[idx], n, rj, got)
        sane = np.ones(D.shape, dtype=bool)
        if slope is not None:
            a1, a1_noise = _contour_slope(ev, got, n)
            # the slope's aliasing error, in function units (times r), must stay below
            # the n-th order term itself, or within 10% of the slope
            allowed = 0.1 * np.abs(slope[idx]) + np.abs(D) * rj[:, None] ** (n - 1) / math.factorial(n)
            sane = np.abs(a1 - slope[idx]) <= allowed + a1_noise
        return D, R, sane, None

    lines = _richardson(level, k, r0, np.full(k, 2.0 * n), np.full(k, 2.0 * n))
    lines.kinds = ["complex"] * k
    lines.dirs = dirs
    if estimate and lines.probe is not None:
        # round-off shared by every radius (see _shifted_noise): the contour of a level the
        # result relies on, around the two shifted points
        centers = _shifted_centers(ev)
        J, base = lines.probe
        for jv in np.unique(J):
            idx = np.flatnonzero(J == jv)
            rj = r0[idx] / _RATIO ** jv
            again = []
            for c in centers:
                got = _contour_values(ev, U[idx], n, rj, None if a0 is None else a0[idx] / _RATIO ** jv, c)
                again.append(_contour_level(ev, U[idx], n, rj, got)[0])
            lines.error[idx] += _shifted_noise(ev, base[idx], *again)
    return lines


def _across_kink(ev: _Evaluator, U: np.ndarray, n: int, p: int, h: np.ndarray, at: np.ndarray,
                 estimate: bool = True) -> _Lines:
    """Central ladders where no kink is at ``x``; along the others, one ladder from each side.

    Where the two one-sided derivatives agree (within their estimates), the
    derivative exists (Huber's loss at its joint, ``sign(x) x**2`` at 0): the
    better of the two, with the larger of its estimate and their difference.
    Where they differ, there is no derivative: the value is their average (the
    table's convention for ``abs`` and ``maximum``, halfway for any other), the
    error half their difference plus their estimates (so it covers either side)
    and the element is marked unbounded.
    """
    k = U.shape[0]
    rest = np.flatnonzero(~at)
    kinked = np.flatnonzero(at)
    parts = {}
    if rest.size:
        parts["central"] = _fd_ladder(ev, U[rest], n, ["central"] * rest.size, p, h[rest], False, estimate)
    right = _fd_ladder(ev, U[kinked], n, ["forward"] * kinked.size, p, h[kinked], False, estimate)
    left = _fd_ladder(ev, U[kinked], n, ["backward"] * kinked.size, p, h[kinked], False, estimate)
    M = right.value.shape[1]
    value, error, step = np.empty((k, M)), np.empty((k, M)), np.empty((k, M))
    unbounded = np.zeros((k, M), dtype=bool)
    lost = np.zeros((k, M), dtype=bool)
    dirs = U.astype(np.float64).copy()
    kinds = ["central"] * k
    notes: list[str] = []
    if rest.size:
        c = parts["central"]
        value[rest], error[rest], step[rest] = c.value, c.error, c.step
        unbounded[rest] = c.unbounded if c.unbounded is not None else False
        lost[rest] = c.lost if c.lost is not None else False
        dirs[rest] = c.dirs if c.dirs is not None else U[rest]
        for i, b in enumerate(rest):
            kinds[b] = c.kinds[i]
        notes += c.notes
    gap = np.abs(right.value - left.value)
    agree = gap <= right.error + left.error
    pick_right = right.error <= left.error
    one_v = np.where(pick_right, right.value, left.value)
    one_e = np.maximum(np.where(pick_right, right.error, left.error), gap)
    one_h = np.where(pick_right, right.step, left.step)
    value[kinked] = np.where(agree, one_v, 0.5 * (right.value + left.value))
    error[kinked] = np.where(agree, one_e, 0.5 * gap + np.maximum(right.error, left.error))
    step[kinked] = np.where(agree, one_h, np.maximum(right.step, left.step))
    side_lost = (right.unbounded if right.unbounded is not None else False) | \
        (left.unbounded if left.unbounded is not None else False)
    unbounded[kinked] = ~agree | side_lost
    if right.dirs is not None:
        dirs[kinked] = right.dirs  # forward and backward stencils reach the same points' grid
    for b in kinked:
        kinds[b] = "two-sided"
    if np.any(~agree):
        notes.append(f"x sits on a kink along {int(np.sum(np.any(~agree, axis=1)))} direction(s): the "
                     "derivatives from either side differ, their average is given and the error is half "
                     "their difference (no derivative exists there)")
    notes += [nt for nt in right.notes + left.notes if nt not in notes]
    return _Lines(value, error, step, kinds, notes, lost, unbounded, dirs)


def _richardson(level: Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]],
                k: int, h: np.ndarray, first: np.ndarray, stride: np.ndarray) -> _Lines:
    """Richardson extrapolation over the levels ``j = 0, 1, ...`` (steps ``h / 2**j``), per
    direction and output element.

    ``level(idx, j)`` gives, for the directions ``idx``, the base estimates at
    step ``h / 2**j``, their round-off bounds, whether each passed the
    level's own sanity check, and (or None) a bound of the noise measured in
    the function's values: that one does not steer the search (so the value
    is the same with or without it); the selected entry's error is at least
    it. The error of the base estimates is a series in
    ``h**first, h**(first + stride), ...``. Each new step adds a row to the
    Richardson table. An entry is *trusted* only once the steps behind it are
    in the asymptotic regime: successive differences of the base estimates
    shrink by the expected factor ``2**first`` (or are at round-off), at two
    consecutive levels. Before that, two values can agree by chance (an
    oscillating function sampled at steps larger than its period), the classic
    way Richardson extrapolation fails. And a later level that breaks the
    regime (by more than round-off) shows it never was asymptotic: what was
    trusted before it is forgotten, and the search goes on at smaller steps.
    Each trusted entry gets an error estimate: how much the last extrapolation
    and the last step changed it, plus the round-off bound
    ``sum |weights| * eps * |values|``; the smallest wins, per element, and
    its estimate is at least how much the entry of its order moves one level
    further. A direction stops once its estimate stops improving for two
    steps, or reaches round-off with a level beyond the selected entries
    seen; one where nothing was ever trusted reports its best value with the
    spread of the last estimates as its error, and is marked lost (and
    unbounded).
    """
    families = sorted({(a, b) for a, b in zip(first, stride)})
    recent: list[np.ndarray] = []     # per direction, its last three base estimates
    D_lv: list[np.ndarray] = []
    R_lv: list[np.ndarray] = []
    Rn_lv: list[np.ndarray] = []
    ok_lv: list[np.ndarray] = []      # per level: asymptotic (or at round-off) per element
    T_prev: list[np.ndarray] = []
    # best trusted entry and best entry at all, per element (sized at the first level)
    best_v = best_e = best_h = any_v = any_e = any_h = np.empty((0, 0))
    best_j = any_j = best_kk = np.empty((0, 0), dtype=int)
    T_hist: list[list[np.ndarray]] = []
    best_n = any_n = np.empty((0, 0))
    active = np.ones(k, dtype=bool)
    stale = np.zeros(k, dtype=int)
    last = np.full(k, np.inf)
    since = np.full(k, -1)            # the level where each direction first trusted an entry (-1: not yet)
    expected = _RATIO ** first        # how much successive differences shrink
    notes: list[str] = []
    forgot = False
    for j in range(_MAX_LEVELS):
        hj = h / _RATIO ** j
        idx = np.flatnonzero(active)
        D, R, sane_idx, Rn = level(idx, j)
        M = D.shape[1]
        Df = np.full((k, M), np.nan)
        Rf = np.full((k, M), np.nan)
        Rnf = np.zeros((k, M))
        sane = np.ones((k, M), dtype=bool)
        Df[idx], Rf[idx], sane[idx] = D, R, sane_idx
        if Rn is not None:
            Rnf[idx] = Rn
        D_lv.append(Df)
        R_lv.append(Rf)
        Rn_lv.append(Rnf)
        if not recent:
            recent = [Df.copy() for _ in range(3)]
        recent = recent[1:] + [np.where(active[:, None], Df, recent[-1])]
        if j == 0:
            best_v, best_e = Df.copy(), np.full((k, M), np.inf)
            best_h = np.broadcast_to(hj[:, None], (k, M)).copy()
            any_v, any_e, any_h = best_v.copy(), best_e.copy(), best_h.copy()
            best_j, any_j = np.zeros((k, M), dtype=int), np.zeros((k, M), dtype=int)
            best_kk = np.zeros((k, M), dtype=int)
            best_n, any_n = np.zeros((k, M)), np.zeros((k, M))
        # is this level in the asymptotic regime? (needs two differences)
        if j >= 2:
            d1 = np.abs(D_lv[j - 1] - D_lv[j - 2])
            d2 = np.abs(Df - D_lv[j - 1])
            noise = 4.0 * (Rf + R_lv[j - 1] + R_lv[j - 2])
            with np.errstate(divide="ignore", invalid="ignore"):
                rho = d1 / d2
            e = expected[:, None]
            ok = ((rho > e / _ASYMPTOTIC_SLACK) & (rho < e * _ASYMPTOTIC_SLACK)) | (np.maximum(d1, d2) <= noise)
            ok &= sane
            # A break after something was trusted: noise the round-off bound missed, or a
            # regime that never was asymptotic (then whatever was trusted goes).
            broke = active[:, None] & np.isfinite(Df) & ~ok & np.isfinite(best_e) & (d2 > best_e)
            if np.any(broke):
                noisy = broke & (d2 <= _NOISE_BREAK * noise)
                best_e = np.where(noisy, d2, best_e)
                wrong = broke & ~noisy
                if np.any(wrong):
                    forgot = True
                    best_e = np.where(wrong, np.inf, best_e)
                    rows = np.any(wrong, axis=1)
                    stale[rows] = 0
                    last[rows] = np.inf
                    since[rows] = -1
        else:
            ok = np.zeros((k, M), dtype=bool)
        ok_lv.append(ok)
        T_row = [Df]
        E_row = [np.abs(Df - D_lv[j - 1]) + Rf if j >= 1 else np.full((k, M), np.inf)]
        N_row = [Rnf]
        for kk in range(1, min(j, _MAX_EXTRAP) + 1):
            window = list(range(j - kk, j + 1))
            hs = _RATIO ** -np.array(window, dtype=np.float64)
            T = np.empty((k, M))
            Rk = np.empty((k, M))
            Nk = np.empty((k, M))
            for a, b in families:
                sel = (first == a) & (stride == b)
                c = _extrapolation_weights(hs, [a + b * i for i in range(kk)])
                T[sel] = sum(ci * D_lv[m][sel] for ci, m in zip(c, window))
                Rk[sel] = sum(abs(ci) * R_lv[m][sel] for ci, m in zip(c, window))
                Nk[sel] = sum(abs(ci) * Rn_lv[m][sel] for ci, m in zip(c, window))
            N_row.append(Nk)
            diff = np.abs(T - T_row[kk - 1])
            if kk < len(T_prev):
                diff = np.maximum(diff, np.abs(T - T_prev[kk]))
            T_row.append(T)
            E_row.append(diff + Rk)
        T_prev = T_row
        T_hist.append(T_row)
        for kk, (T, E, Nn) in enumerate(zip(T_row, E_row, N_row)):
            good = np.isfinite(E)
            take = good & (E < any_e)
            any_v, any_e = np.where(take, T, any_v), np.where(take, E, any_e)
            any_h = np.where(take, hj[:, None], any_h)
            any_j = np.where(take, j, any_j)
            any_n = np.where(take, Nn, any_n)
            # trusted: every level whose ratio the window's estimates rely on looked asymptotic
            # (two consecutive ratio tests: one alone passes by chance too often)
            trusted = good & (j >= 3)
            for m in range(max(2, min(j - kk, j - 1)), j + 1):
                trusted &= ok_lv[m]
            take = trusted & (E < best_e)
            best_v, best_e = np.where(take, T, best_v), np.where(take, E, best_e)
            best_h = np.where(take, hj[:, None], best_h)
            best_j = np.where(take, j, best_j)
            best_kk = np.where(take, kk, best_kk)
            best_n = np.where(take, Nn, best_n)
        since = np.where((since < 0) & np.any(np.isfinite(best_e), axis=1), j, since)
        newest = np.max(np.where(np.isfinite(best_e), best_j, -1), axis=1, initial=-1)
        # stopping, per direction: converged (trusted and round-off reached) or stalled; round-off
        # counts only once a level after the selected entries' was seen (it must stay asymptotic:
        # a ripple sampled at steps that are all near multiples of its period looks converged
        # until the step halves below the period; and it checks the entries, below)
        valid = np.isfinite(Df)
        cur = np.where(np.any(valid, axis=1),
                       np.max(np.where(valid, best_e, -np.inf), axis=1, initial=-np.inf), np.inf)
        floor = np.max(np.where(valid, Rf, 0.0), axis=1, initial=0.0)
        stale = np.where(cur < 0.5 * last, 0, stale + 1)
        last = np.minimum(last, cur)
        if j >= 3:
            settled = np.isfinite(cur) & ((stale >= 2) | ((cur <= 2.0 * floor) & (j > newest) & (since >= 0)))
            active &= ~settled
        if not np.any(active):
            break
    # never trusted: the best untrusted value, with the spread of the last base estimates
    spread = np.max(np.abs(np.array(recent) - any_v[None]), axis=0)
    lost = ~np.isfinite(best_e)
    # An entry's estimate compares it with the entry of its order one level up; the first entry
    # of an order has only the one below at its own level, which shares all but one of its
    # levels (their leftover terms nearly cancel in the difference). The same order one level
    # down, when evaluated, shows how much the entry still moves.
    ahead = np.zeros_like(best_e)
    for j in range(len(T_hist) - 1):
        for kk in range(len(T_hist[j + 1])):
            sel = (best_j == j) & (best_kk == kk) & ~lost
            if np.any(sel):
                moved = np.abs(T_hist[j + 1][kk] - best_v)
                ahead = np.where(sel & np.isfinite(moved), moved, ahead)
    best_e = np.where(lost, best_e, np.maximum(best_e, ahead))
    value = np.where(lost, any_v, best_v)
    error = np.where(lost, np.maximum(any_e, spread), best_e)
    # the measured noise of the values, through the selected entry's weights
    error = np.maximum(error, np.where(lost, any_n, best_n))
    step = np.where(lost, any_h, best_h)
    if np.any(lost & np.isfinite(value)):
        notes.append("the Richardson sequence never reached its asymptotic regime for some elements "
                     "(the function varies on a scale below the smallest step): the error is the spread "
                     "of the last estimates, and no bound")
    elif forgot:
        notes.append("the Richardson sequence left what looked like its asymptotic regime at smaller steps "
                     "(the function varies on a scale below the first steps): the search went on below it")
    error = np.where(np.isfinite(error) | ~np.isfinite(value), error, np.abs(value))
    # Differences of successive extrapolants estimate the error to within a small factor only:
    # the thorough property run found a true error 1.56x the estimate (round-off dominated,
    # near 1e-13); doubling keeps the estimate a bound without making it loose.
    error = _RICHARDSON_SAFETY * error
    lost_mask = lost & np.isfinite(value)
    # per direction, the finest level the selected entries used, and its base estimates
    level_of = np.where(lost, any_j, best_j)
    J = np.max(np.where(np.isfinite(value), level_of, 0), axis=1, initial=0)
    base = np.stack([D_lv[J[b]][b] for b in range(k)]) if k else np.zeros((0, 0))
    return _Lines(value, error, step, [], notes, lost_mask, lost_mask.copy(), probe=(J, base))
