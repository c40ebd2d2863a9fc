"""The seed notes' worked examples of backpropagation, on every backend.

The apple and apple-and-orange shopping graphs, the chain rule on
z = (x + y)^2, the affine node f = w x + b, and one sigmoid neuron with a
squared loss and one SGD step. Each prints the notes' numbers and checks them.

Run:  python examples/backprop_seeds.py
"""

import numpy as np

import diffkit as dk


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def main() -> None:
    for backend in dk.backends():
        print(f"--- backend: {backend}")
        total, g = dk.value_and_grad(lambda p, n, t: p * n * t, argnums=(0, 1, 2), backend=backend)(
            100.0, 2.0, 1.1)
        print(f"apple: total {total:.0f}; d/d price {g[0]:.1f}, d/d count {g[1]:.0f}, d/d tax {g[2]:.0f}")
        assert np.allclose([total, *g], [220, 2.2, 110, 200], rtol=1e-15)

        total, g = dk.value_and_grad(lambda ap, an, op, on, t: (ap * an + op * on) * t,
                                     argnums=(0, 1, 2, 3, 4), backend=backend)(100.0, 2.0, 150.0, 3.0, 1.1)
        print(f"apple and orange: total {total:.0f}; gradients " + ", ".join(f"{v:g}" for v in g))
        assert np.allclose([total, *g], [715, 2.2, 110, 3.3, 165, 650], rtol=1e-15)

        dz = dk.grad(lambda x, y: (x + y) ** 2, argnums=(0, 1), backend=backend)(1.0, 2.0)
        print(f"z = (x + y)^2 at (1, 2): dz/dx = {dz[0]:g}, dz/dy = {dz[1]:g} (2 (x + y) = 6)")
        assert dz == (6.0, 6.0)

        f, g = dk.value_and_grad(lambda w, x, b: w * x + b, argnums=(0, 1, 2), backend=backend)(-2.0, 5.0, 3.0)
        print(f"f = w x + b at w=-2, x=5, b=3: f = {f:g}; df/dw = {g[0]:g}, df/dx = {g[1]:g}, df/db = {g[2]:g}")
        assert (f, *g) == (-7.0, 5.0, -2.0, 1.0)

        def loss(w1, w2):
            return (0.0 - sigmoid(w1 * 2.0 + w2 * 5.0)) ** 2

        value, (g1, g2) = dk.value_and_grad(loss, argnums=(0, 1), backend=backend)(0.5, 0.1)
        print(f"one neuron: loss {value:.7f}, dloss/dw1 {g1:.7f}, dloss/dw2 {g2:.7f}; "
              f"after one SGD step w1 = {0.5 - g1:.7f}, w2 = {0.1 - g2:.7f}")
        assert [round(float(v), 7) for v in (value, g1, g2, 0.5 - g1, 0.1 - g2)] == [
            0.6684280, 0.4877533, 1.2193833, 0.0122467, -1.1193833]


if __name__ == "__main__":
    main()
