"""One function, every backend: the gradient, Jacobian and Hessian side by side.

Run:  python examples/quickstart.py
"""

import numpy as np

import diffkit as dk


def f(x, y):
    return np.sin(x) * np.exp(y) + x**2 * y


def main() -> None:
    # by hand: df/dx = cos(x) e^y + 2xy, df/dy = sin(x) e^y + x^2
    want = (np.cos(1.0) * np.exp(2.0) + 4.0, np.sin(1.0) * np.exp(2.0) + 1.0)
    for backend in dk.backends():
        g = dk.grad(f, argnums=(0, 1), backend=backend)(1.0, 2.0)
        h = dk.hessian(lambda v: f(v[0], v[1]), backend=backend)(np.array([1.0, 2.0]))
        print(f"{backend:8s} grad = {g[0]:.15f}, {g[1]:.15f}")
        print(f"{'':8s} hessian = {h.tolist()}")
        assert np.allclose(g, want, rtol=1e-15)
    print(f"{'by hand':8s} grad = {want[0]:.15f}, {want[1]:.15f}")


if __name__ == "__main__":
    main()
