"""One sigmoid neuron, a squared loss and one SGD step, to 7 digits on every backend.

Retells the one-neuron worked example of seed note 004 (worked example 6 of
docs/tutorial.md): inputs i1 = 2, i2 = 5, weights w1 = 0.5, w2 = 0.1,
target 0 and

    pre = w1 i1 + w2 i2,   out = sigma(pre),   loss = (target - out)^2.

The digest's numbers (the note rounds them to 3 digits and slips on the
updated w1): pre 1.5; sigma 0.8175745; loss 0.6684280; dloss/dsigma 1.6351490;
dloss/dpre 0.2438767; dloss/dw1 0.4877533; dloss/dw2 1.2193833; after one SGD
step with learning rate 1, w1 = 0.0122467 and w2 = -1.1193833.

Every derivative comes from diffkit, on every backend: the gradient of the loss
with respect to the weights, and the intermediate ones as derivatives of the
rest of the graph with respect to the intermediate value (the loss as a
function of sigma, of pre). They are printed to 7 digits, compared with the
digest, with the chain rule (dloss/dw1 = dloss/dsigma * dsigma/dpre * i1) and
with the derivative worked out by hand.

Run:  python examples/one_neuron.py
"""

from __future__ import annotations

import argparse
import math

import numpy as np

import diffkit as dk

I1, I2, W1, W2, TARGET, LEARNING_RATE = 2.0, 5.0, 0.5, 0.1, 0.0, 1.0

NOTES = {  # docs/tutorial.md, worked example 6
    "pre-activation": 1.5,
    "sigma": 0.8175745,
    "loss": 0.6684280,
    "dloss/dsigma": 1.6351490,
    "dloss/dpre": 0.2438767,
    "dloss/dw1": 0.4877533,
    "dloss/dw2": 1.2193833,
    "w1 after one step": 0.0122467,
    "w2 after one step": -1.1193833,
}


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


# the graph, and the parts of it after each intermediate value


def pre_activation(w1, w2, i1=I1, i2=I2):
    return w1 * i1 + w2 * i2


def loss_of_sigma(out, target=TARGET):
    return (target - out) ** 2


def loss_of_pre(pre, target=TARGET):
    return loss_of_sigma(sigmoid(pre), target)


def loss(w1, w2, i1=I1, i2=I2, target=TARGET):
    return loss_of_pre(pre_activation(w1, w2, i1, i2), target)


def neuron(backend):
    """All the worked example's numbers, node by node, each value and derivative from ``backend``."""
    pre, (dpre_dw1, dpre_dw2) = dk.value_and_grad(pre_activation, argnums=(0, 1), backend=backend)(W1, W2)
    out, dsigma_dpre = dk.value_and_grad(sigmoid, backend=backend)(pre)
    value, dloss_dsigma = dk.value_and_grad(loss_of_sigma, backend=backend)(out)
    whole, (g1, g2) = dk.value_and_grad(loss, argnums=(0, 1), backend=backend)(W1, W2)
    assert np.isclose(whole, value, rtol=1e-15)
    return {
        "pre-activation": pre,
        "sigma": out,
        "loss": value,
        "dloss/dsigma": dloss_dsigma,  # the loss as a function of the intermediate sigma
        "dsigma/dpre": dsigma_dpre,
        "dloss/dpre": dk.derivative(loss_of_pre, backend=backend)(pre),  # ... of the intermediate pre
        "dpre/dw1": dpre_dw1,
        "dpre/dw2": dpre_dw2,
        "dloss/dw1": g1,  # the gradient of the whole graph with respect to the weights
        "dloss/dw2": g2,
        "w1 after one step": W1 - LEARNING_RATE * g1,  # SGD: w <- w - eta dloss/dw
        "w2 after one step": W2 - LEARNING_RATE * g2,
    }


def by_hand():
    """The same derivatives written out with the chain rule in plain floats (no diffkit)."""
    pre = W1 * I1 + W2 * I2
    s = 1.0 / (1.0 + math.exp(-pre))
    dloss_dsigma = -2.0 * (TARGET - s)
    dloss_dpre = dloss_dsigma * s * (1.0 - s)
    return {"dloss/dsigma": dloss_dsigma, "dloss/dpre": dloss_dpre,
            "dloss/dw1": dloss_dpre * I1, "dloss/dw2": dloss_dpre * I2}


def main(argv=None):
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
    print(f"one neuron: i1 = {I1:g}, i2 = {I2:g}, w1 = {W1:g}, w2 = {W2:g}, target {TARGET:g}, "
          f"loss = (target - sigma(w1 i1 + w2 i2))^2, learning rate {LEARNING_RATE:g}\n")
    results = {backend: neuron(backend) for backend in dk.backends()}
    hand = by_hand()

    keys = list(results["reverse"])
    width = max(map(len, keys)) + 2
    print(("  " + " " * width + "notes".ljust(12) + "".join(b.ljust(12) for b in results)).rstrip())
    for key in keys:
        note = f"{NOTES[key]:.7f}" if key in NOTES else "-"
        cells = "".join(f"{float(results[b][key]):.7f}".ljust(12) for b in results)
        print(f"  {key.ljust(width)}{note.ljust(12)}{cells}".rstrip())

    for backend, r in results.items():
        # the digest's numbers, to the 7 digits printed
        for key, want in NOTES.items():
            assert f"{float(r[key]):.7f}" == f"{want:.7f}", (backend, key, r[key], want)
        # the chain rule, factor by factor
        dpre_dw1, dpre_dw2 = r["dpre/dw1"], r["dpre/dw2"]
        assert np.allclose([dpre_dw1, dpre_dw2], [I1, I2], rtol=1e-15)
        assert np.isclose(r["dloss/dpre"], r["dloss/dsigma"] * r["dsigma/dpre"], rtol=1e-14)
        assert np.isclose(r["dloss/dw1"], r["dloss/dpre"] * dpre_dw1, rtol=1e-14)
        assert np.isclose(r["dloss/dw2"], r["dloss/dpre"] * dpre_dw2, rtol=1e-14)
        # and the derivatives worked out by hand, to round-off
        for key, want in hand.items():
            assert np.isclose(r[key], want, rtol=1e-14, atol=0), (backend, key, r[key], want)
    print("\nchecked on every backend: the digest's numbers to 7 digits, the chain rule "
          "dloss/dw = dloss/dsigma * dsigma/dpre * dpre/dw, and the derivatives by hand")

    r = results["reverse"]
    before, after = r["loss"], loss(r["w1 after one step"], r["w2 after one step"])
    print(f"after the step: pre = {pre_activation(r['w1 after one step'], r['w2 after one step']):.7f}, "
          f"loss {before:.7f} -> {after:.7f}")
    assert after < before


if __name__ == "__main__":
    main()
