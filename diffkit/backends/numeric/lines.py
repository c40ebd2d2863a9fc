"""Derivatives along lines ``t -> f(x + t u)``: one estimate per direction.

* ``_complex_first``: first derivatives by complex step, with a round-off estimate;
* ``_fd_level``: finite differences of any order at one step, on stencils whose
  points lie exactly on the floating-point grid (``_grid_delta``);
* ``_contour_values``, ``_contour_level``, ``_contour_slope``: the n-th
  derivative from points on a circle in the complex plane (Lyness and Moler 1967);
* ``_fit_domain`` and ``_inside_kinks``: steps whose stencils stay inside the
  function's domain and on one side of the nearest kink;
* ``_plain``: one stencil per direction, with an error estimate from the same
  stencil at twice the step.

The Richardson ladder over shrinking steps (:mod:`.ladder`) is built from these.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .evaluator import _Evaluator
from .stencils import _stencil_offsets, fornberg_weights

# ---------------------------------------------------------------------------
# Constants, each with its reason
# ---------------------------------------------------------------------------

_NOISE_ULPS = 2.0
"""Relative round-off assumed in each function value (a few correctly rounded
operations); the Richardson differences reveal anything larger."""

_CONTOUR_NOISE_ULPS = 8.0
"""Round-off assumed in the imaginary part of each value on a complex contour, in
ulps of that part: NumPy's complex functions away from the real axis are accurate
to a few ulps per component, and a composition of several of them adds up. Two
ulps (as for real values) left 8% of the second derivatives of random compositions
with errors above their estimate, all at round-off level; eight leaves under 1%."""

_CS_FLOOR_ULPS = 4.0
"""Floor of a complex-step error estimate in ulps of the derivative: the
derivative is computed like an AD tangent, a handful of rounded operations."""

_CS_STEP_RATIO = 1.3183
"""The second complex step is the first times this non-dyadic factor, so its
imaginary parts round differently (a power of 2 would round identically)."""

_SHIFT_ULPS = 1024.0
"""The estimates' shifted evaluations (:func:`_shifted_centers`) are about this many ulps (of each
coordinate, random signs) away from x, so that the real parts round differently: every
intermediate value, including those much larger than x, whose rounding a shift of an ulp or
two leaves unchanged (in ``rastrigin`` at x = -59.5, ``2 pi x`` rounds the same way at x + 1
ulp, and its rounding changed the derivative by 1e-12, 12 times the estimate)."""

_SHIFT_RATIO = 0.6180339887498949
"""The second point is at ``x - 0.618 s`` when the first is at ``x + s``: their weighted average
``(0.618 D(x + s) + D(x - 0.618 s)) / 1.618`` cancels the derivative's change over the shift
(to second order), and, the two not being symmetric, does not cancel a rounding error that
repeats with the shift (a symmetric pair averaged the sawtooth of ``2 pi x``'s rounding away)."""

_SHIFT_NOISE_FACTOR = 2.0
"""The shifted evaluations' difference, doubled, is the error estimate (of round-off that two
evaluations with independent rounding show: one difference of two errors of equal size
exceeds half of either most of the time)."""

_SHRINK = 16.0
"""Factor by which a stencil that left the domain is shrunk before retrying."""

_MIN_STEP_ULPS = 1024.0
"""A stencil is not shrunk below this many ulps of the argument's scale: further
down its points would collapse onto x (and round-off would swamp any difference)."""

_EDGE_SAFETY = 0.5
"""A contour's radius stays below this fraction of the first-order distance to the
nearest domain edge seen by the complex probe (a branch cut starts there)."""


# ---------------------------------------------------------------------------
# Derivatives along lines
# ---------------------------------------------------------------------------


@dataclass
class _Lines:
    """Derivatives along ``k`` directions, each of the ``M`` output elements."""

    value: np.ndarray          # (k, M)
    error: np.ndarray          # (k, M)
    step: np.ndarray           # (k, M), in units of t
    kinds: list[str]           # per direction: complex / richardson / central / forward / backward
    notes: list[str]
    lost: np.ndarray | None = None   # (k, M): a Richardson sequence that was never trusted
    unbounded: np.ndarray | None = None  # (k, M): the error is no bound (a kink at x, never trusted ...)
    dirs: np.ndarray | None = None   # (k, N): the direction actually differentiated, per unit t
    """Stencil points on the floating-point grid move along ``dirs``, not exactly along ``U``:
    each component of a displacement is rounded on its own (relative changes of up to
    ``2**levels`` ulps over the step). A derivative along one coordinate is unaffected (t is the
    projection), one along several is along ``dirs``; the Hessian's polarization uses it."""
    probe: tuple[np.ndarray, np.ndarray] | None = None  # per direction: a level used, its base estimates


def _grid_delta(ev: _Evaluator, U: np.ndarray, h: np.ndarray, reach: float, levels: int) -> np.ndarray:
    """The displacements ``h[b] * U[b]``, per component, rounded onto the floating-point grid.

    Each component becomes a multiple of ``ulp * 2**levels``, with ``ulp`` the
    spacing at the farthest point of the stencil (``reach`` steps away), so
    that ``x + o * delta / 2**j`` is exact for integer offsets ``|o| <= reach``
    and ``j <= levels``: the stencil is exactly symmetric and successive steps
    are exactly halved. Rounded points would not be symmetric, and next to a
    singularity (where ``f''`` is huge) the term ``f'' (a - b) / 2`` of two
    unequal half-widths ``a``, ``b`` is an error that no extrapolation removes.
    (Only a stencil that crosses into a coarser binade cannot be exact.)
    """
    d = h[:, None] * U
    far = np.abs(ev.x0)[None, :] + reach * np.abs(d)
    grid = np.spacing(far.astype(ev.dtype)).astype(np.float64) * 2.0 ** levels
    q = np.round(d / grid)
    q = np.where((q == 0) & (d != 0), np.sign(d), q)
    return np.asarray(q * grid)


def _real_points(ev: _Evaluator, U: np.ndarray, delta: np.ndarray, offs: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``x + offs[a] * delta[b]`` in the argument's dtype, and the displacements taken.

    Returns ``(X, t_eff)`` with ``X`` of shape ``(k * A, N)`` and ``t_eff`` of shape
    ``(k, A)``: each rounded point's displacement projected on ``U[b]``, in units of t.
    """
    k, A = delta.shape[0], len(offs)
    X = ev.x0[None, None, :] + offs[None, :, None] * delta[:, None, :]
    Xd = X.astype(ev.dtype)
    disp = Xd.astype(np.float64) - ev.x0[None, None, :]
    uu = np.sum(U * U, axis=1)
    t_eff = np.einsum("kan,kn->ka", disp, U) / np.where(uu > 0, uu, 1.0)[:, None]
    return Xd.reshape(k * A, -1), t_eff


def _grid_deltas(ev: _Evaluator, U: np.ndarray, h: np.ndarray, n: int, kinds: list[str], p: int,
                 factor: float, levels: int) -> np.ndarray:
    delta = np.empty_like(U)
    for kind in sorted(set(kinds)):
        sel = np.array([kd == kind for kd in kinds])
        reach = float(np.max(np.abs(_stencil_offsets(n, kind, p)))) * factor
        delta[sel] = _grid_delta(ev, U[sel], h[sel], reach, levels)
    return delta


def _t_of(U: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """A displacement's length along its direction, in units of t."""
    uu = np.sum(U * U, axis=1)
    return np.asarray(np.einsum("kn,kn->k", delta, U) / np.where(uu > 0, uu, 1.0))


def _complex_first(ev: _Evaluator, U: np.ndarray, h: np.ndarray, estimate: bool) -> _Lines:
    """First derivatives along ``U`` by complex step, with a round-off estimate.

    The estimate comes from two more complex evaluations, along a random
    combination of the directions, around the two points of
    :func:`_shifted_centers` and with a step ``_CS_STEP_RATIO`` larger: their
    round-off is independent of the first, and :func:`_shifted_noise` turns
    them into an estimate.
    """
    k = U.shape[0]
    Z = ev.x0[None, :].astype(np.complex128) + 1j * h[:, None] * U
    vals, edges = ev.complex(Z.astype(ev.cdtype))
    D = vals.imag / h[:, None]
    eps = ev.eps
    # an imaginary part in the subnormal range is known only to tiny * eps (absolute)
    tiny = float(np.finfo(ev.dtype).tiny)
    err = _CS_FLOOR_ULPS * eps * (np.abs(D) + tiny / h[:, None])
    if estimate:
        rng = np.random.default_rng(20180226)  # fixed: results are reproducible
        sigma = rng.choice([-1.0, 1.0], size=k)
        # Imaginary displacements that make every direction's term a_j D_j about the same
        # size: the combination's round-off d is then about k eps |a_j D_j| for each j, and
        # d / |a_i| bounds direction i's noise relative to its own derivative. (Each
        # direction's own step is relative to |x_i|, ~1e-77 at x_i = 0, and derivatives
        # may differ by orders of magnitude: unweighted, one direction's round-off was
        # charged to another, 9.7e61 for an argument at 0.)
        size = np.max(np.abs(D), axis=1, initial=0.0)
        small = float(np.min(size[size > 0], initial=1.0)) if np.any(size > 0) else 1.0
        with np.errstate(divide="ignore"):
            shrink = np.where(size > 0, np.clip(small / np.where(size > 0, size, 1.0), 1e-30, 1.0), 1.0)
        a = sigma * float(np.max(h, initial=0.0)) * _CS_STEP_RATIO * shrink
        w = np.sum(a[:, None] * U, axis=0)
        centers = np.stack(_shifted_centers(ev)).astype(np.complex128)
        v2, _ = ev.complex((centers + 1j * w[None, :]).astype(ev.cdtype))
        combo = np.sum(a[:, None] * D, axis=0)
        d = _shifted_noise(ev, combo, v2[0].imag, v2[1].imag)
        err = np.maximum(err, d[None, :] / np.abs(a)[:, None])
    return _Lines(D, err, np.broadcast_to(h[:, None], D.shape).copy(), ["complex"] * k, [])


def _fd_level(ev: _Evaluator, U: np.ndarray, n: int, kinds: list[str], p: int, delta: np.ndarray,
              f0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Finite-difference estimates with displacements ``delta`` (one row per direction), and
    their round-off bounds."""
    k = U.shape[0]
    M = f0.shape[0]
    D = np.empty((k, M))
    R = np.empty((k, M))
    for kind in sorted(set(kinds)):
        sel = np.array([kd == kind for kd in kinds])
        ks = int(sel.sum())
        offs = _stencil_offsets(n, kind, p)
        nz = offs != 0
        X, t_eff = _real_points(ev, U[sel], delta[sel], offs[nz])
        vals = ev.real(X).reshape(ks, int(nz.sum()), M)
        nodes = np.zeros((len(offs), ks))
        nodes[nz] = t_eff.T
        w = fornberg_weights(nodes, n)  # (A, ks)
        allv = np.empty((ks, len(offs), M))
        allv[:, nz] = vals
        if not np.all(nz):
            allv[:, ~nz] = f0[None, None, :]
        D[sel] = np.einsum("ak,kam->km", w, allv)
        # values below tiny are subnormal: known to tiny * eps, not to eps relative
        R[sel] = _NOISE_ULPS * ev.eps * np.einsum("ak,kam->km", np.abs(w), np.abs(allv) + ev.tiny)
    return D, R


def _contour_values(ev: _Evaluator, U: np.ndarray, n: int, r: np.ndarray, a: np.ndarray | None = None,
                    center: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``f`` at ``x + r exp(i pi (2k+1) / (2n)) u`` for each direction, shape ``(k, n, M)``,
    and the radii used, shape ``(k,)``.

    For n = 2 the points are ``x +- a + i a`` with ``a`` (per direction, shape
    ``(k, N)``; by default ``r u / sqrt(2)``) on the floating-point grid, so
    their real parts are exact and they lie exactly on the circle of radius
    ``|a| sqrt(2)``: a real part rounded by half an ulp would cost
    ``f'' ulp(x) / r``, which dominates at small radii next to a large ``x``.
    (Other n keep that small error: their cosines cannot all be on the grid.)
    ``center`` replaces ``x`` (a point nearby, for :func:`_shifted_noise`).
    """
    k = U.shape[0]
    x0 = ev.x0 if center is None else center
    if n == 2:
        if a is None:
            a = _grid_delta(ev, U, r / math.sqrt(2.0), 1.0, 0)    # (k, N) on the grid
        Z = x0[None, None, :] + np.array([1.0, -1.0])[None, :, None] * a[:, None, :] + 1j * a[:, None, :]
        r = np.sqrt(2.0) * _t_of(U, a)
    else:
        angles = np.pi * (2 * np.arange(n) + 1) / (2 * n)
        w = np.exp(1j * angles)
        Z = x0[None, None, :] + (r[:, None, None] * w[None, :, None]) * U[:, None, :]
    vals = ev.complex(Z.reshape(k * n, -1).astype(ev.cdtype))[0]
    return vals.reshape(k, n, -1), r


def _contour_level(ev: _Evaluator, U: np.ndarray, n: int, r: np.ndarray,
                   got: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The n-th derivative from ``n`` points on a circle of radius ``r`` (per direction).

    Points ``x + r exp(i pi (2k+1) / (2n)) u``, k = 0..n-1: with their mirror
    images (the conjugates, which a real function maps to conjugate values)
    they are 2n points on the circle, and the n-th Taylor coefficient is the
    alternating sum of the imaginary parts,
    ``(n-1)!/r**n sum (-1)**k Im f(z_k)`` (Lyness and Moler 1967). The real
    part, and with it ``f(x)``, drops out, so round-off is relative to
    ``r |f'|``, not ``|f|``.
    """
    vals, r = got if got is not None else _contour_values(ev, U, n, r)
    im = vals.imag
    sign = (-1.0) ** np.arange(n)
    scale = math.factorial(n - 1) / r ** n
    D = scale[:, None] * np.einsum("a,kam->km", sign, im)
    R = _CONTOUR_NOISE_ULPS * ev.eps * scale[:, None] * np.sum(np.abs(im) + ev.tiny, axis=1)
    D[~np.isfinite(D)] = np.nan
    return D, R


def _contour_slope(ev: _Evaluator, got: tuple[np.ndarray, np.ndarray], n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first derivative from the same points (their first Fourier coefficient), and its round-off."""
    vals, r = got
    angles = np.pi * (2 * np.arange(n) + 1) / (2 * n)
    a1 = (np.einsum("a,kam->km", np.cos(angles), vals.real) + np.einsum("a,kam->km", np.sin(angles), vals.imag)) \
        / (n * r[:, None])
    noise = _CONTOUR_NOISE_ULPS * ev.eps * np.sum(np.abs(vals), axis=1) / (n * r[:, None])
    return a1, noise


def _fit_domain(ev: _Evaluator, U: np.ndarray, n: int, kinds: list[str], p: int, h: np.ndarray,
                user_step: bool, factor: float, levels: int) -> tuple[np.ndarray, list[str], list[str]]:
    """Steps and stencils that stay inside the function's domain, per direction.

    A stencil point where ``f`` is not finite (while ``f(x)`` is) has left the
    domain. Unless the step was given, the stencil is shrunk by 16 until it
    fits; the edge is then about that far away, and next to an edge a
    function varies on the scale of the distance to it (``log``, ``sqrt``
    just right of 0), so the step is rescaled to that distance (the relative
    step times the distance), not merely kept inside. If no step above
    ``_MIN_STEP_ULPS`` ulps fits, ``x`` sits on the edge: a central stencil
    becomes one-sided towards the finite side.
    """
    f0 = ev.f0()
    finite0 = np.isfinite(f0)
    if not np.any(finite0):
        return h, kinds, []
    notes: list[str] = []
    kinds = list(kinds)
    h = h.copy()
    floor = _MIN_STEP_ULPS * ev.eps  # in units of t, so at least that many ulps of x

    def ends_ok(b: int, kind: str, hb: float) -> np.ndarray:
        offs = _stencil_offsets(n, kind, p)
        ends = np.array([offs.min(), offs.max()])
        delta = _grid_delta(ev, U[b:b + 1], np.array([hb]), float(np.max(np.abs(ends))) * factor, levels)
        X, _ = _real_points(ev, U[b:b + 1], delta, ends)
        vals = ev.real(X, remember=True)
        return np.asarray(np.all(np.isfinite(vals[:, finite0]), axis=1))

    def fit(b: int, kind: str, start: float) -> tuple[float | None, np.ndarray]:
        hb = start
        ok = ends_ok(b, kind, hb)
        if np.all(ok):
            return start, ok
        if user_step:
            return None, ok
        while hb / _SHRINK >= floor:
            hb /= _SHRINK
            ok = ends_ok(b, kind, hb)
            if np.all(ok):
                extent = float(np.max(np.abs(_stencil_offsets(n, kind, p))))
                return min(hb, start * hb * extent), ok
        return None, ok

    # all directions at once first: usually every stencil fits and that is the only call
    k = U.shape[0]
    vals = np.empty((k, 2, f0.shape[0]))
    for kind in sorted(set(kinds)):
        sel = np.flatnonzero([kd == kind for kd in kinds])
        offs = _stencil_offsets(n, kind, p)
        ends = np.array([offs.min(), offs.max()])
        delta = _grid_delta(ev, U[sel], h[sel], float(np.max(np.abs(ends))) * factor, levels)
        X, _ = _real_points(ev, U[sel], delta, ends)
        vals[sel] = ev.real(X, remember=True).reshape(len(sel), 2, -1)
    fits = np.all(np.isfinite(vals[:, :, finite0]), axis=(1, 2))
    for b in (int(i) for i in np.flatnonzero(~fits)):
        kind = kinds[b]
        hb, ok = fit(b, kind, float(h[b]))
        if hb is not None:
            h[b] = hb
            continue
        side = "forward" if ok[1] else "backward" if ok[0] else None
        if kind == "central" and side is not None:
            # x sits on the edge: one-sided, towards the finite side, at the usual step
            hb, _ = fit(b, side, float(h[b]))
            if hb is not None:
                kinds[b], h[b] = side, hb
                notes.append(f"one-sided ({side}) along direction {b}: the function is not finite on "
                             "the other side of x")
                continue
        notes.append(f"no finite stencil along direction {b}: the function is not finite next to x")
    return h, kinds, notes


def _inside_kinks(ev: _Evaluator, U: np.ndarray, n: int, kinds: list[str], p: int, h: np.ndarray,
                  user_step: bool) -> tuple[np.ndarray, np.ndarray]:
    """Steps whose stencils stay on one side of the nearest kink, per direction, and the
    directions along which ``x`` sits on a kink.

    A finite difference across a kink of ``abs``, ``maximum``, a comparison in
    a ``np.where`` ... averages two slopes, and Richardson extrapolation can
    mistake the mix for convergence (the error of a central difference across
    a kink of the derivative is ``O(h)``: successive differences shrink by 2,
    within reach of the ratio test's window). The probe measures the distance
    to the nearest kink; the stencil's reach is kept below half of it. A kink
    at ``x`` itself or within ``_MIN_STEP_ULPS`` ulps cannot be kept out: those
    directions are returned (the second array), and the caller looks at each
    side of ``x`` apart (:func:`~.ladder._ladder`) or says that its error is no
    bound (:func:`_plain`).
    """
    k = U.shape[0]
    if user_step:
        return h, np.zeros(k, dtype=bool)
    reach, at = ev.kink_distance(U)
    extent = np.array([float(np.max(np.abs(_stencil_offsets(n, kd, p)))) for kd in kinds])
    limit = _EDGE_SAFETY * reach / extent
    near = limit < h
    fits = near & (limit >= _MIN_STEP_ULPS * ev.eps)
    return np.where(fits, limit, h), at | (near & ~fits)


def _plain(ev: _Evaluator, U: np.ndarray, n: int, kind: str, p: int, h: np.ndarray, user_step: bool,
           estimate: bool) -> _Lines:
    """One stencil per direction at step ``h``; the estimate compares it with the same stencil at 2h."""
    k = U.shape[0]
    f0 = ev.f0()
    kinds = [kind] * k
    wide, at = _inside_kinks(ev, U, n, kinds, p, 2.0 * h, user_step)  # the estimate uses 2h
    crossing = ("x sits on a kink (or within a few ulps of one): the stencil crosses it, and its error "
                "estimate is no bound")
    notes = [crossing] if np.any(at) else []
    h, kinds, fit_notes = _fit_domain(ev, U, n, kinds, p, wide / 2.0, user_step, 2.0, 1)
    notes += fit_notes
    # on the grid, so that the stencil is exactly symmetric and its double exactly twice as wide
    delta = _grid_deltas(ev, U, h, n, kinds, p, 2.0, 1)
    h = _t_of(U, delta)
    D, R = _fd_level(ev, U, n, kinds, p, delta, f0)
    err = R
    if estimate:
        D2, _ = _fd_level(ev, U, n, kinds, p, 2 * delta, f0)
        # Richardson: D(h) - f = c h**p, D(2h) - f = c (2h)**p  =>  error of D(h) = (D(2h) - D(h)) / (2**p - 1)
        err = np.abs(D2 - D) / (2.0 ** p - 1) + R
    unbounded = np.broadcast_to(at[:, None], D.shape).copy()
    return _Lines(D, err, np.broadcast_to(h[:, None], D.shape).copy(), kinds, notes, unbounded=unbounded,
                  dirs=delta / np.where(h != 0, h, 1.0)[:, None])


def _shifted_centers(ev: _Evaluator) -> tuple[np.ndarray, np.ndarray]:
    """``x + s`` and ``x - 0.618 s`` on the grid, ``s`` about ``_SHIFT_ULPS`` ulps of each
    coordinate with random signs (fixed seed); a coordinate at 0 stays."""
    rng = np.random.default_rng(19670523)  # fixed: results are reproducible
    rho = rng.choice([-1.0, 1.0], size=ev.x0.shape)
    hi = (ev.x0 + _SHIFT_ULPS * ev.eps * np.abs(ev.x0) * rho).astype(ev.dtype).astype(np.float64)
    lo = (ev.x0 - _SHIFT_RATIO * (hi - ev.x0)).astype(ev.dtype).astype(np.float64)
    return hi, lo


def _shifted_noise(ev: _Evaluator, base: np.ndarray, hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """Round-off that the steps share, from the same estimate at the two points of
    :func:`_shifted_centers` (``hi``, ``lo``): ``_SHIFT_NOISE_FACTOR`` times the larger of

    * ``|(0.618 hi + lo) / 1.618 - base|``: round-off inside the function that does
      not depend on the step (the rounding of ``y / sqrt(2)`` before a ``cos`` of it,
      or of ``2 pi x`` before a ``sin``, changes every value the same way) is a
      perturbation of the function itself: the same at every level, so no difference
      of levels shows it, and Richardson extrapolation passes it on unchanged (its
      weights sum to 1). Points whose intermediate values round differently show it;
    * ``|hi - lo| / (1.618 * _SHIFT_ULPS)``: how much the estimate changes when ``x``
      moves by an ulp of each coordinate, the error that the rounding of any
      intermediate value proportional to ``x`` causes (``cos(1000 x)`` rounds
      ``1000 x`` to its ulp, which moves the derivative as an ulp of ``x`` does): a
      floor where one comparison happens to show little.
    """
    lam = _SHIFT_RATIO
    d = np.abs((lam * hi + lo) / (1.0 + lam) - base)
    slope = np.abs(hi - lo) / ((1.0 + lam) * _SHIFT_ULPS)
    out = _SHIFT_NOISE_FACTOR * np.maximum(d, slope)
    return np.where(np.isfinite(out), out, 0.0)


_NOISE_SPACING_ULPS = 1024.0
"""Spacing of the points of :func:`_measured_noise`, in ulps of each coordinate's scale: far
enough apart that the function's intermediate values (which may be much larger than x) round
differently, close enough that its smooth variation vanishes from high differences."""

_NOISE_POINTS = 3
"""Points on each side of x for :func:`_measured_noise` (6 evaluations; with f(x), the 7 of
Moré and Wild's recommendation)."""

_MEASURED_NOISE_FACTOR = 3.0
"""Measured noise is a standard deviation; a value's error is taken as up to three of them."""


def _measured_noise(ev: _Evaluator) -> np.ndarray:
    """The noise of the function's values next to ``x`` (per output element): Moré and Wild's
    ECnoise (SIAM J. Sci. Comput. 33, 2011), measured once per evaluation point.

    The round-off bound of a stencil assumes each value is correct to ``_NOISE_ULPS`` ulps of
    itself. A value computed with cancellation (the egg holder's ``-b sin(...) - a sin(...)``,
    terms of 500 for a value of 5, and sines of large arguments) carries errors of hundreds of
    its own ulps. The function at ``x + i tau w`` (``i = -3 .. 3``, ``w`` a random sign per
    coordinate times its magnitude, ``tau`` about 2e-13) varies smoothly by nothing visible in
    third to fifth differences, which then hold the noise alone: their scaled root mean
    square (``gamma_k = (k!)**2 / (2k)!``) is its standard deviation. The median over
    ``k = 3 .. 5`` is kept; NaN where a value is not finite.
    """
    cached = getattr(ev, "_noise", None)
    if cached is not None:
        return np.asarray(cached)
    f0 = ev.f0()
    rng = np.random.default_rng(20110317)  # fixed: results are reproducible
    # relative to each coordinate itself (next to a singularity at 0 the function varies on
    # the scale |x|); a coordinate at 0 does not move
    w = rng.choice([-1.0, 1.0], size=ev.x0.shape) * np.abs(ev.x0)
    tau = _NOISE_SPACING_ULPS * ev.eps
    offs = [i for i in range(-_NOISE_POINTS, _NOISE_POINTS + 1) if i != 0]
    X = (ev.x0[None, :] + np.array(offs, dtype=np.float64)[:, None] * tau * w[None, :]).astype(ev.dtype)
    vals = ev.real(X)
    F = np.concatenate([vals[:_NOISE_POINTS], f0[None, :], vals[_NOISE_POINTS:]])
    sig = []
    for k in range(3, 6):
        d = np.diff(F, n=k, axis=0)
        gamma = math.factorial(k) ** 2 / math.factorial(2 * k)
        sig.append(np.sqrt(gamma * np.mean(d * d, axis=0)))
    noise = np.median(np.array(sig), axis=0)
    noise = np.where(np.isfinite(noise), noise, np.nan)
    ev._noise = noise  # type: ignore[attr-defined]
    return np.asarray(noise)


def _noise_bound(ev: _Evaluator, U: np.ndarray, n: int, kinds: list[str], p: int, delta: np.ndarray,
                 noise: np.ndarray) -> np.ndarray:
    """``_MEASURED_NOISE_FACTOR * noise * sum |w|`` for each direction's stencil at ``delta``."""
    k = U.shape[0]
    out = np.zeros((k, noise.shape[0]))
    for kind in sorted(set(kinds)):
        sel = np.array([kd == kind for kd in kinds])
        offs = _stencil_offsets(n, kind, p)
        t = _t_of(U[sel], delta[sel])
        w = fornberg_weights(offs[:, None] * t[None, :], n)     # (A, ks): nominal nodes
        out[sel] = _MEASURED_NOISE_FACTOR * np.sum(np.abs(w), axis=0)[:, None] * np.nan_to_num(noise)[None, :]
    return out
