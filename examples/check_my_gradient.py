"""Check a gradient diffkit did not compute: by hand, or from PyTorch or JAX.

The most common reason to reach for a tool like diffkit: you have a gradient
— a backward pass written out by hand, an adjoint code, a framework's
autograd — and want to know whether it is right. ``dk.testing.check_gradient``
compares it, point by point, with diffkit's independent reference (SymPy's own
derivatives of the function, evaluated in 50-digit mpmath) and fails with the
element, both values, the error and a cause.

Here: a one-hidden-layer sigmoid network with a squared loss,

    h = sigma(x W1 + b1),   y = h W2 + b2,   loss = sum((y - t)^2) / 2,

its backward pass written by hand (the delta rule), checked at two points; the
same backward pass with a classic slip (the sigmoid's derivative forgotten),
caught; and, when installed, PyTorch's and JAX's gradients of the same loss.

Run:  python examples/check_my_gradient.py
"""

from __future__ import annotations

import argparse

import numpy as np

import diffkit as dk
from diffkit.testing import check_gradient

RNG = np.random.default_rng(4)
X = RNG.normal(size=(5, 3))
T = RNG.normal(size=(5, 2))


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def loss(W1, b1, W2, b2):
    h = sigmoid(X @ W1 + b1)
    y = h @ W2 + b2
    return 0.5 * np.sum((y - T) ** 2)


def backward(W1, b1, W2, b2, slip=False):
    """The gradient by hand: backpropagation written out (the delta rule)."""
    h = sigmoid(X @ W1 + b1)
    y = h @ W2 + b2
    dy = y - T                                   # dloss/dy
    dW2, db2 = h.T @ dy, dy.sum(axis=0)
    dh = dy @ W2.T
    dz = dh if slip else dh * h * (1.0 - h)     # the slip: sigma' forgotten
    dW1, db1 = X.T @ dz, dz.sum(axis=0)
    return dW1, db1, dW2, db2


def params():
    return (RNG.normal(size=(3, 4)) * 0.5, RNG.normal(size=4) * 0.1,
            RNG.normal(size=(4, 2)) * 0.5, RNG.normal(size=2) * 0.1)


def torch_gradient():
    import torch

    Xt, Tt = torch.tensor(X), torch.tensor(T)

    def grad(W1, b1, W2, b2):
        ps = [torch.tensor(p, requires_grad=True) for p in (W1, b1, W2, b2)]
        h = torch.sigmoid(Xt @ ps[0] + ps[1])
        (0.5 * ((h @ ps[2] + ps[3] - Tt) ** 2).sum()).backward()
        return tuple(p.grad.numpy() for p in ps)

    return grad


def jax_gradient():
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)

    def jloss(W1, b1, W2, b2):
        h = jax.nn.sigmoid(X @ W1 + b1)
        return 0.5 * jnp.sum((h @ W2 + b2 - T) ** 2)

    g = jax.grad(jloss, argnums=(0, 1, 2, 3))
    return lambda *ps: tuple(np.asarray(v) for v in g(*ps))


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
    points = [params(), params()]
    nums = (0, 1, 2, 3)

    reports = check_gradient(loss, backward, points, argnums=nums, name="by hand")
    worst = max(r.row("by hand").rel_error for r in reports)
    print(f"backward pass by hand: agrees at {len(points)} points "
          f"(largest relative error {worst:.1e}; reference: {reports[0].reference.kind})")

    try:
        check_gradient(loss, lambda *p: backward(*p, slip=True), points, argnums=nums, name="with a slip")
    except AssertionError as e:
        detail = str(e).splitlines()[-1]
        print("backward pass with a slip: caught --", detail[detail.index("differs"):][:160])
    else:  # pragma: no cover - the check must catch it
        raise SystemExit("the slip was not caught")

    for label, make in (("PyTorch", torch_gradient), ("JAX", jax_gradient)):
        try:
            grad = make()
        except ImportError:
            print(f"{label}: not installed, skipped")
            continue
        reports = check_gradient(loss, grad, points, argnums=nums, name=label)
        worst = max(r.row(label).rel_error for r in reports)
        print(f"{label}: agrees at {len(points)} points (largest relative error {worst:.1e})")


if __name__ == "__main__":
    main()
