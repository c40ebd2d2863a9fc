"""The affine node, the sigmoid, its derivative sigma (1 - sigma), and vanishing gradients.

Retells seed note 004 (worked examples 4 and 5 of docs/tutorial.md):

* the affine node f = w x + b at w = -2, x = 5, b = 3: f = -7, df/dx = w = -2,
  df/dw = x = 5, df/db = 1, also in the note's two steps g = w x, f = g + b;
* the sigmoid sigma(x) = 1 / (1 + e^-x) and its derivative
  sigma'(x) = sigma(x) (1 - sigma(x)), which is at most 0.25, at x = 0;
* hence vanishing gradients: through k stacked sigmoids
  sigma(sigma(...sigma(x))) the derivative is a product of k factors, each at
  most 0.25, so it is at most 0.25^k.

Every number comes from diffkit (all backends for the notes' numbers) and is
checked: the derivative against the closed form at 161 points, the maximum
found by a grid search refined by Newton's method on sigma'' (with diffkit's
second and third derivatives), the bound 0.25^k for k = 1..10.

Run:  python examples/sigmoid.py [--plot sigmoid.png]
"""

from __future__ import annotations

import argparse

import numpy as np

import diffkit as dk

TOL = dict(rtol=1e-14, atol=1e-15)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def stacked(x, k):
    """k sigmoids in a row: sigma(sigma(...sigma(x)))."""
    for _ in range(k):
        x = sigmoid(x)
    return x


# --- 1. the affine node --------------------------------------------------------------


def affine(w, x, b):
    return w * x + b


def affine_node():
    print("affine node f = w x + b at w = -2, x = 5, b = 3 (notes: f = -7, df/dx = -2, df/dw = 5, df/db = 1)")
    for backend in dk.backends():
        f, (dw, dx, db) = dk.value_and_grad(affine, argnums=(0, 1, 2), backend=backend)(-2.0, 5.0, 3.0)
        print(f"  {backend:8s} f = {f:g}, df/dx = {dx:g}, df/dw = {dw:g}, df/db = {db:g}")
        assert np.allclose([f, dx, dw, db], [-7.0, -2.0, 5.0, 1.0], **TOL)
        # the note's steps: g = w x, f = g + b; df/dx = df/dg * dg/dx, df/dw = df/dg * dg/dw
        g = -2.0 * 5.0
        df_dg, df_db = dk.grad(lambda g, b: g + b, argnums=(0, 1), backend=backend)(g, 3.0)
        dg_dw, dg_dx = dk.grad(lambda w, x: w * x, argnums=(0, 1), backend=backend)(-2.0, 5.0)
        assert np.allclose([df_dg * dg_dx, df_dg * dg_dw, df_db], [dx, dw, db], **TOL)
    print(f"  in steps g = w x = {g:g}, f = g + b: df/dg = {df_dg:g}, dg/dx = w = {dg_dx:g}, "
          f"dg/dw = x = {dg_dw:g}: df/dx = {df_dg * dg_dx:g}, df/dw = {df_dg * dg_dw:g}")
    print()


# --- 2. the sigmoid's derivative -----------------------------------------------------------


def sigmoid_derivative(xs, backend):
    """sigma'(x) at every point of ``xs``: the gradient of sum(sigma(x)) is elementwise sigma'."""
    return dk.grad(lambda x: np.sum(sigmoid(x)), backend=backend)(xs)


def closed_form():
    xs = np.linspace(-8.0, 8.0, 161)
    s = sigmoid(xs)
    # sigma (1 - sigma), with 1 - sigma(x) written as sigma(-x): the literal 1 - s
    # cancels for large x and would be the less accurate side of the comparison
    want = s * sigmoid(-xs)
    print(f"sigma'(x) from diffkit against sigma(x) (1 - sigma(x)) at {xs.size} points in [-8, 8]:")
    for backend in dk.backends():
        d = sigmoid_derivative(xs, backend)
        rel = np.max(np.abs(d - want) / want)
        print(f"  {backend:8s} largest relative difference {rel:.1e}; "
              f"largest absolute difference to the literal s (1 - s) {np.max(np.abs(d - s * (1 - s))):.1e}")
        np.testing.assert_allclose(d, want, rtol=2e-15)
        np.testing.assert_allclose(d, s * (1 - s), rtol=0, atol=1e-15)
    print()
    return xs, want


def find_maximum():
    """Where sigma' is largest: a grid search, then Newton's method on sigma'' = 0."""
    grid = np.linspace(-6.0, 6.0, 100)  # 0 is not a grid point: the search must find it
    d = sigmoid_derivative(grid, "reverse")
    x0 = grid[np.argmax(d)]
    print(f"maximum of sigma': largest on a 100-point grid at x = {x0:.4f} ({d.max():.6f})")
    assert np.all(d <= 0.25)
    for backend in dk.backends():
        second = dk.derivative(sigmoid, order=2, backend=backend)
        third = dk.derivative(sigmoid, order=3, backend=backend)
        x = x0
        for _ in range(8):
            x = x - second(x) / third(x)
        peak = dk.derivative(sigmoid, backend=backend)(x)
        print(f"  {backend:8s} Newton on sigma'' = 0 from there: x = {x:.2e}, sigma'(x) = {peak:.17g}")
        assert abs(x) < 1e-12 and abs(peak - 0.25) < 1e-15, (backend, x, peak)
    print("  the maximum is 0.25, at x = 0, as in the notes")
    print()


# --- 3. vanishing gradients ---------------------------------------------------------------


def vanishing(depths=range(1, 11)):
    grid = np.linspace(-8.0, 8.0, 321)
    print("derivative of k stacked sigmoids: at x = 0 (every backend), and its largest value on a grid "
          "in [-8, 8] (reverse) against the bound 0.25^k")
    print("  k   d/dx at 0      max over x     0.25^k         max / 0.25^k")
    at0, peaks, previous = [], [], None
    for k in depths:
        values = [float(dk.derivative(lambda x: stacked(x, k), backend=b)(0.0)) for b in dk.backends()]
        assert np.allclose(values, values[-1], rtol=1e-13, atol=0), (k, values)
        d0 = values[-1]
        peak = float(np.max(dk.grad(lambda x: np.sum(stacked(x, k)))(grid)))
        bound = 0.25**k
        print(f"  {k:<3d} {d0:<14.4e} {peak:<14.4e} {bound:<14.4e} {peak / bound:.3g}")
        assert 0 < d0 <= peak <= bound * (1 + 1e-14), (k, d0, peak, bound)
        if previous is not None:  # one more layer multiplies the derivative by at most 0.25
            assert d0 <= 0.25 * previous * (1 + 1e-14)
        previous = d0
        at0.append(d0)
        peaks.append(peak)
    print(f"  after {max(depths)} layers the gradient is {at0[-1]:.1e}: it vanishes")
    return list(depths), at0, peaks


# --- the figure --------------------------------------------------------------------------


def plot(path, xs, dsig, depths, at0, peaks):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    drawn = False
    try:  # the library's own picture, where it exists
        from diffkit import plots

        plots.sigmoid(ax=ax1)
        drawn = True
    except (ImportError, AttributeError):
        pass
    if not drawn:
        ax1.plot(xs, sigmoid(xs), label=r"$\sigma(x)$")
        ax1.plot(xs, dsig, label=r"$\sigma'(x) = \sigma(x)\,(1 - \sigma(x))$ (diffkit)")
        ax1.axhline(0.25, color="gray", lw=0.8, ls="--")
        ax1.plot([0], [0.25], "o", color="C3", label="maximum 0.25 at x = 0")
        ax1.set_xlabel("x")
        ax1.set_title("sigmoid and its derivative")
        ax1.legend(loc="upper left", fontsize=9)
        ax1.grid(alpha=0.3)
    ax2.semilogy(depths, [0.25**k for k in depths], "k--", label=r"bound $0.25^k$")
    ax2.semilogy(depths, peaks, "o-", ms=8, label="largest d/dx over x in [-8, 8]")
    ax2.semilogy(depths, at0, "s:", ms=5, mfc="none", mew=1.5, label="d/dx at x = 0")
    ax2.set_xlabel("k, number of stacked sigmoids")
    ax2.set_ylabel("derivative")
    ax2.set_xticks(depths)
    ax2.set_title("vanishing gradient through k sigmoids")
    ax2.legend(fontsize=9)
    ax2.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"figure saved to {path}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plot", metavar="FILE.png", help="save a figure of sigma, sigma' and the decay")
    args = parser.parse_args(argv)
    affine_node()
    xs, dsig = closed_form()
    find_maximum()
    depths, at0, peaks = vanishing()
    if args.plot:
        plot(args.plot, xs, dsig, depths, at0, peaks)


if __name__ == "__main__":
    main()
