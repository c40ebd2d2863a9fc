"""The seed notes' worked examples, to the digits the tutorial (docs/tutorial.md) retells.

The expected numbers are the notes' own (checked independently there); every
example runs on both AD backends.
"""

from __future__ import annotations

import numpy as np
import pytest

import diffkit as dk

BACKENDS = ["symbolic", "forward", "reverse"]


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


@pytest.mark.parametrize("backend", BACKENDS)
def test_apple(backend):
    # 2 apples at 100 each, 10% tax: total 220; d/d price 2.2, d/d count 110, d/d tax 200
    def total(apple_price, apple_count, tax):
        return apple_price * apple_count * tax

    value, grads = dk.value_and_grad(total, argnums=(0, 1, 2), backend=backend)(100.0, 2.0, 1.1)
    assert value == pytest.approx(220.0, rel=1e-15)
    assert grads == pytest.approx((2.2, 110.0, 200.0), rel=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
def test_apple_and_orange(backend):
    # total 715; d/d apple price 2.2, apple count 110, orange price 3.3, orange count 165, tax 650
    def total(apple_price, apple_count, orange_price, orange_count, tax):
        return (apple_price * apple_count + orange_price * orange_count) * tax

    value, grads = dk.value_and_grad(total, argnums=(0, 1, 2, 3, 4), backend=backend)(
        100.0, 2.0, 150.0, 3.0, 1.1)
    assert value == pytest.approx(715.0, rel=1e-15)
    assert grads == pytest.approx((2.2, 110.0, 3.3, 165.0, 650.0), rel=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("x, y", [(1.0, 2.0), (-3.0, 0.5), (0.0, 0.0)])
def test_chain_rule(backend, x, y):
    # z = (x + y)^2: dz/dx = dz/dy = 2 (x + y)
    dz = dk.grad(lambda x, y: (x + y) ** 2, argnums=(0, 1), backend=backend)(x, y)
    assert dz == (2 * (x + y), 2 * (x + y))


@pytest.mark.parametrize("backend", BACKENDS)
def test_affine_node(backend):
    # f = w x + b at w = -2, x = 5, b = 3: f = -7, df/dx = -2, df/dw = 5, df/db = 1
    value, (dw, dx, db) = dk.value_and_grad(lambda w, x, b: w * x + b, argnums=(0, 1, 2),
                                            backend=backend)(-2.0, 5.0, 3.0)
    assert (value, dw, dx, db) == (-7.0, 5.0, -2.0, 1.0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_sigmoid_derivative(backend):
    # sigma' = sigma (1 - sigma), at most 0.25, reached at x = 0
    xs = np.linspace(-6.0, 6.0, 121)
    d = dk.jacobian(sigmoid, backend=backend)(xs).diagonal()
    s = sigmoid(xs)
    # AD evaluates exp(-x) / (1 + exp(-x))**2, the closed form s (1 - s): the two
    # round differently by up to a few hundred ulps in the tails (where 1 - s cancels)
    np.testing.assert_allclose(d, s * (1 - s), rtol=500 * np.finfo(float).eps, atol=1e-17)
    assert d.max() == pytest.approx(0.25, rel=1e-15)
    assert xs[d.argmax()] == 0.0


@pytest.mark.parametrize("backend", BACKENDS)
def test_sigmoid_gradient_vanishes_when_stacked(backend):
    # each layer multiplies the gradient by at most 0.25: 10 stacked sigmoids give <= 0.25**10
    def stacked(x, depth=10):
        for _ in range(depth):
            x = sigmoid(x)
        return x

    g = dk.derivative(stacked, backend=backend)(0.0)
    assert 0 < g <= 0.25**10


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_neuron(backend):
    # inputs i1 = 2, i2 = 5; weights w1 = 0.5, w2 = 0.1; target 0; loss = (0 - sigma(w1 i1 + w2 i2))^2
    i1, i2, target = 2.0, 5.0, 0.0

    def loss(w1, w2):
        return (target - sigmoid(w1 * i1 + w2 * i2)) ** 2

    value, (g1, g2) = dk.value_and_grad(loss, argnums=(0, 1), backend=backend)(0.5, 0.1)
    assert round(float(sigmoid(0.5 * i1 + 0.1 * i2)), 7) == 0.8175745
    assert round(float(value), 7) == 0.6684280
    assert round(float(g1), 7) == 0.4877533
    assert round(float(g2), 7) == 1.2193833
    # the intermediate gradients of the notes: dloss/dsigma and dloss/dpre
    dsig = dk.grad(lambda s: (target - s) ** 2, backend=backend)(sigmoid(1.5))
    dpre = dk.grad(lambda p: (target - sigmoid(p)) ** 2, backend=backend)(1.5)
    assert round(float(dsig), 7) == 1.6351490
    assert round(float(dpre), 7) == 0.2438767
    # one SGD step with learning rate 1
    w1, w2 = 0.5 - g1, 0.1 - g2
    assert round(float(w1), 7) == 0.0122467
    assert round(float(w2), 7) == -1.1193833
