"""Numerical differentiation is correct but slow: gradient cost against the number of parameters.

Retells seed note 002 ("Deep Learning from Scratch", chapter 5): numerical
differentiation is simple and correct, but it needs the function's value at
one or two perturbed points per parameter, so its cost grows with the number
of parameters n; backpropagation (reverse mode) gets the whole gradient for a
small constant multiple of one evaluation of the function.

For f(x) = sum(sin(x_i) x_i^2), n = 10 ... 1000, the script times (median of a
few repeats) the function, diffkit's reverse mode, diffkit's numeric backend
(the complex step here, one evaluation per parameter) and plain central
differences (f(x + h e_i) - f(x - h e_i)) / 2h (two evaluations per parameter),
and prints a table. It checks that

* all gradients agree with the derivative by hand, cos(x) x^2 + 2 x sin(x);
* the numeric methods' evaluations grow linearly with n (counted), and so does
  their time (at least 20% of linear over the range);
* reverse mode stays a small multiple of one evaluation of f at the largest n.

Run:  python examples/numeric_vs_reverse.py [--sizes 10 30 100 300 1000]
                                            [--repeats 3] [--plot FILE.png]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import diffkit as dk

SIZES = (10, 30, 100, 300, 1000)  # add 3000 for a longer run (about 10 s more)


def f(x):
    return np.sum(np.sin(x) * x**2)


def gradient_by_hand(x):
    return np.cos(x) * x**2 + 2 * x * np.sin(x)


def central_differences(fun, x, counter):
    """The textbook numerical gradient: two evaluations of ``fun`` per parameter."""
    g = np.empty_like(x)
    for i in range(x.size):
        h = 1e-5 * max(1.0, abs(x[i]))
        e = np.zeros_like(x)
        e[i] = h
        g[i] = (fun(x + e) - fun(x - e)) / (2 * h)
        counter[0] += 2
    return g


def median_time(call, repeats, min_sample=2e-3):
    """Median time per call of ``call()`` over ``repeats`` samples, each at least ``min_sample`` s long."""
    t = time.perf_counter()
    call()  # warm up (and find out how long one call takes)
    once = time.perf_counter() - t
    loops = max(1, min(1000, int(min_sample / max(once, 1e-9))))
    if once < 1e-3:  # cheap calls: more samples cost little and steady the median
        repeats = max(repeats, 7)
    samples = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(loops):
            call()
        samples.append((time.perf_counter() - t) / loops)
    return float(np.median(samples))


def measure(n, repeats):
    x = np.linspace(-3.0, 3.0, n)
    reverse = dk.grad(f)  # backend="reverse", the default
    numeric = dk.grad(f, backend="numeric")
    want = gradient_by_hand(x)

    # correctness first
    g_rev, g_num = reverse(x), numeric(x)
    counter = [0]
    g_cd = central_differences(f, x, counter)
    scale = np.max(np.abs(want))
    np.testing.assert_allclose(g_rev, want, rtol=1e-13, atol=1e-13 * scale)
    np.testing.assert_allclose(g_num, want, rtol=1e-12, atol=1e-12 * scale)  # the complex step: exact
    np.testing.assert_allclose(g_cd, want, rtol=1e-6, atol=1e-6 * scale)  # a difference quotient: ~9 digits
    result = dk.Numeric().gradient_result(f, (x,))  # the same with its cost and error estimate
    np.testing.assert_allclose(result.value, g_num, rtol=1e-14, atol=1e-14 * scale)

    return dict(
        n=n,
        f=median_time(lambda: f(x), repeats),
        reverse=median_time(lambda: reverse(x), repeats),
        numeric=median_time(lambda: numeric(x), repeats),
        central=median_time(lambda: central_differences(f, x, [0]), repeats),
        numeric_nfev=result.nfev,
        numeric_method=result.method,
        central_nfev=counter[0],
        error_numeric=float(np.max(np.abs(g_num - want)) / scale),
        error_central=float(np.max(np.abs(g_cd - want)) / scale),
    )


def ms(t):
    return f"{t * 1e3:.3f}" if t < 0.1 else f"{t * 1e3:.1f}"


def print_table(rows):
    print("times in ms (median); evals = evaluations of f; ratios to reverse mode")
    header = ["n", "f", "reverse", "rev / f", "numeric", "evals", "num / rev",
              "central", "evals", "cd / rev"]
    lines = [[str(r["n"]), ms(r["f"]), ms(r["reverse"]), f"{r['reverse'] / r['f']:.1f}",
              ms(r["numeric"]), str(r["numeric_nfev"]), f"{r['numeric'] / r['reverse']:.0f}",
              ms(r["central"]), str(r["central_nfev"]), f"{r['central'] / r['reverse']:.0f}"] for r in rows]
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header))]
    for line in [header, *lines]:
        print("  " + "  ".join(c.rjust(w) for c, w in zip(line, widths)))
    worst_num = max(r["error_numeric"] for r in rows)
    worst_cd = max(r["error_central"] for r in rows)
    print(f"largest error against the derivative by hand (relative to the largest entry): reverse < 1e-13, "
          f"numeric ({rows[0]['numeric_method']} step) {worst_num:.1e}, central differences {worst_cd:.1e}")


def slope(rows, key):
    """The exponent p in time ~ n^p, from the smallest and the largest n."""
    a, b = rows[0], rows[-1]
    return float(np.log(b[key] / a[key]) / np.log(b["n"] / a["n"]))


def check(rows):
    for r in rows:  # evaluations grow linearly: one (complex step) or two (central) per parameter
        assert r["central_nfev"] == 2 * r["n"], r
        assert r["n"] <= r["numeric_nfev"] <= r["n"] + 5, r
    first, last = rows[0], rows[-1]
    growth = last["n"] / first["n"]
    print(f"growth from n = {first['n']} to n = {last['n']} (x{growth:g}), time ~ n^p: "
          f"numeric p = {slope(rows, 'numeric'):.2f}, central p = {slope(rows, 'central'):.2f}, "
          f"reverse p = {slope(rows, 'reverse'):.2f}, f p = {slope(rows, 'f'):.2f}")
    print(f"at n = {last['n']}: reverse mode costs {last['reverse'] / last['f']:.1f} evaluations of f, "
          f"the numeric backend {last['numeric'] / last['f']:.0f}, central differences "
          f"{last['central'] / last['f']:.0f}")
    if growth >= 30:  # timings are noisy: the margins are wide
        assert last["numeric"] / first["numeric"] >= 0.2 * growth, "numeric time should grow about linearly"
        assert last["central"] / first["central"] >= 0.2 * growth, "central differences should grow about linearly"
        assert last["reverse"] / first["reverse"] <= 0.2 * growth, "reverse mode should grow much slower"
    if last["n"] >= 1000:
        assert last["reverse"] <= 20 * last["f"], "reverse mode should cost a small multiple of f"
        assert last["numeric"] >= 20 * last["reverse"], "the numeric gradient should be far slower"


def plot(path, rows):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = np.array([r["n"] for r in rows], dtype=float)
    fig, ax = plt.subplots(figsize=(7, 4.8))
    method = rows[0]["numeric_method"]
    for key, label, style in [("numeric", f"numeric backend ({method} step, n + O(1) evaluations)", "s-"),
                              ("central", "plain central differences (2n evaluations)", "^-"),
                              ("reverse", "reverse mode (backpropagation)", "o-"),
                              ("f", "one evaluation of f", "k.--")]:
        ax.loglog(n, [r[key] * 1e3 for r in rows], style, label=label)
    # what 2n evaluations of f cost by themselves: the floor under central differences
    ax.loglog(n, [2 * r["n"] * r["f"] * 1e3 for r in rows], color="gray", lw=1, ls=":",
              label="2n evaluations of f")
    ax.set_xlabel("number of parameters n")
    ax.set_ylabel("time per gradient (ms, median)")
    ax.set_title(r"gradient of $f(x) = \Sigma\, \sin(x_i)\, x_i^2$: numeric vs reverse mode")
    ax.grid(alpha=0.3, which="both")
    low, high = ax.get_ylim()
    ax.set_ylim(low, high * 30)  # room for the legend above the curves
    ax.legend(fontsize=8.5, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"figure saved to {path}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), metavar="N",
                        help=f"numbers of parameters (default {' '.join(map(str, SIZES))})")
    parser.add_argument("--repeats", type=int, default=3, help="timing samples per measurement (default 3)")
    parser.add_argument("--plot", metavar="FILE.png", help="save a log-log plot of the times")
    args = parser.parse_args(argv)
    rows = [measure(n, args.repeats) for n in sorted(args.sizes)]
    print_table(rows)
    check(rows)
    if args.plot:
        plot(args.plot, rows)


if __name__ == "__main__":
    main()
