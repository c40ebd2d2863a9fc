"""A multi-layer perceptron trained by backpropagation and mini-batch SGD on handwritten digits.

Retells seed notes 000, 001 and 003 (worked example 7 of docs/tutorial.md):

* note 001's two-layer net: s1 = x W1 + b1, h = sigma(s1), s2 = h W2 + b2, and
  here y_hat = sigma(s2), 64 inputs (8x8 pixels), 32 hidden units, 10 outputs;
* note 003's loss J = 1/(2m) sum (y - y_hat)^2 over a mini-batch of m samples
  (y one-hot), its update theta <- theta - eta dJ/dtheta, batches and epochs;
* note 000's delta rule, with its notation: w_ij^(l) joins unit i of layer
  l-1 to unit j of layer l, s_j^(l) is the pre-activation, x^(l) = theta(s^(l)),
  delta_j^(l) = de/ds_j^(l) and

      delta_i^(l-1) = sum_j delta_j^(l) w_ij^(l) theta'(s_i^(l-1)),
      de/dw_ij^(l) = x_i^(l-1) delta_j^(l).

The gradients that train the net are diffkit's reverse mode, ``dk.grad(loss,
argnums=(0, 1, 2, 3))`` over the four parameter arrays. Before training they
are cross-checked: on a tiny net (64-3-10, 1 sample) against the symbolic,
numeric and forward backends with ``dk.crosscheck`` (the symbolic backend
traces every array element, so it is for small nets); on the real net against
forward mode; and against the delta rule written out below in plain NumPy.
Then the net is trained on scikit-learn's digits (1797 images shipped with
scikit-learn, no download), 75% for training, and its test accuracy printed.

Run:  python examples/mlp_digits.py [--epochs 20]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import diffkit as dk

HIDDEN = 32
BATCH = 16
LEARNING_RATE = 1.0
EPOCHS = 20
SEED = 0


def sigmoid(s):
    return 1.0 / (1.0 + np.exp(-s))


# --- the net and its loss: one definition, for diffkit and for plain NumPy ----------------


def init_params(n_in, n_hidden, n_out, rng):
    """[W1, b1, W2, b2], W^(l) of shape (d^(l-1), d^(l)) so that W[i, j] is the notes' w_ij^(l)."""
    return [rng.normal(0.0, 1.0 / np.sqrt(n_in), (n_in, n_hidden)), np.zeros(n_hidden),
            rng.normal(0.0, 1.0 / np.sqrt(n_hidden), (n_hidden, n_out)), np.zeros(n_out)]


def predict(W1, b1, W2, b2, X):
    h = sigmoid(X @ W1 + b1)  # x^(1) = theta(s^(1)), s^(1) = x^(0) W^(1) + b^(1)
    return sigmoid(h @ W2 + b2)  # y_hat = x^(2) = theta(s^(2))


def loss(W1, b1, W2, b2, X, Y):
    """Note 003's J = 1/(2m) sum (y - y_hat)^2 over the m rows of X."""
    return np.sum((Y - predict(W1, b1, W2, b2, X)) ** 2) / (2 * X.shape[0])


loss_grad = dk.grad(loss, argnums=(0, 1, 2, 3))  # reverse mode: one backward sweep for all parameters


# --- note 000's delta rule, by hand --------------------------------------------------------


def delta_rule(W1, b1, W2, b2, X, Y):
    """dJ/dW1, dJ/db1, dJ/dW2, dJ/db2 by the notes' backward pass, in plain NumPy (no diffkit)."""
    m = X.shape[0]
    x0 = X  # forward: keep every layer's output x^(l)
    s1 = x0 @ W1 + b1
    x1 = sigmoid(s1)
    s2 = x1 @ W2 + b2
    x2 = sigmoid(s2)
    # output layer: delta_j^(2) = dJ/ds_j^(2) = (y_hat_j - y_j) / m * theta'(s_j^(2)), theta' = sigma (1 - sigma)
    delta2 = (x2 - Y) / m * x2 * (1.0 - x2)
    # the delta rule: delta_i^(1) = sum_j delta_j^(2) w_ij^(2) theta'(s_i^(1))
    delta1 = (delta2 @ W2.T) * x1 * (1.0 - x1)
    # dJ/dw_ij^(l) = x_i^(l-1) delta_j^(l), summed over the batch; the bias's input is 1
    return [x0.T @ delta1, delta1.sum(axis=0), x1.T @ delta2, delta2.sum(axis=0)]


# --- data -------------------------------------------------------------------------------------


def digits(rng_seed=SEED):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    X_train, X_test, y_train, y_test = train_test_split(
        data.data, data.target, test_size=0.25, random_state=rng_seed, stratify=data.target)
    mean, scale = X_train.mean(axis=0), X_train.std(axis=0) + 0.1  # standardise with the training set's statistics
    X_train, X_test = (X_train - mean) / scale, (X_test - mean) / scale
    return X_train, np.eye(10)[y_train], X_test, y_test


def accuracy(params, X, labels):
    return float(np.mean(np.argmax(predict(*params, X), axis=1) == labels))


# --- the checks before training ---------------------------------------------------------


def crosscheck_tiny(X, Y, rng):
    """All four backends on a 64-3-10 net and 1 sample.

    The symbolic backend traces every parameter (235; the pixels and targets,
    not differentiated, stay numbers) and the reference evaluates its derivative in 50-digit
    mpmath: seconds for this net, far beyond its 2000-element limit for the real one.
    """
    params = [p + rng.normal(0.0, 0.1, p.shape) for p in init_params(X.shape[1], 3, 10, rng)]
    report = dk.crosscheck(loss, args=(*params, X[:1], Y[:1]), op="grad", argnums=(0, 1, 2, 3),
                           time_budget=0.0, name="tiny MLP 64-3-10, 1 sample")
    print(report)
    assert report.ok and report.reference.kind.startswith("symbolic"), report
    # the reverse row agrees with the 50-digit reference to a few roundings
    reverse = next(r for r in report.rows if r.backend == "reverse")
    print(f"reverse against the 50-digit reference: largest relative error {reverse.rel_error:.1e}\n")


def crosscheck_full(params, X, Y):
    report = dk.assert_backends_agree(loss, args=(*params, X, Y), op="grad", argnums=(0, 1, 2, 3),
                                      backends=("forward", "reverse"),
                                      name=f"MLP 64-{HIDDEN}-10, {X.shape[0]} samples")
    sizes = "+".join(str(p.size) for p in params)
    print(f"the training net ({sizes} = {sum(p.size for p in params)} parameters, {X.shape[0]} samples): "
          f"forward and reverse mode agree ({report.reference.kind})")


def check_delta_rule(params, X, Y, when):
    ours = delta_rule(*params, X, Y)
    theirs = loss_grad(*params, X, Y)
    worst = max(float(np.max(np.abs(a - b))) / float(np.max(np.abs(b))) for a, b in zip(ours, theirs))
    for name, a, b in zip(("W1", "b1", "W2", "b2"), ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14 * float(np.max(np.abs(b))), err_msg=name)
    print(f"{when}: the delta rule by hand equals diffkit's reverse mode on a batch of {X.shape[0]} "
          f"(largest difference {worst:.1e} of the largest entry)")


# --- training ---------------------------------------------------------------------------------


def train(params, X, Y, X_test, y_test, epochs, rng):
    """Mini-batch SGD: every epoch visits the training set once, in a new random order."""
    history = []
    start = time.perf_counter()
    print(f"epoch  {'loss J':>9s}  {'test accuracy':>13s}")
    print(f"{0:5d}  {loss(*params, X, Y):9.5f}  {accuracy(params, X_test, y_test):13.3f}")
    for epoch in range(1, epochs + 1):
        order = rng.permutation(X.shape[0])
        for first in range(0, X.shape[0], BATCH):
            batch = order[first:first + BATCH]
            grads = loss_grad(*params, X[batch], Y[batch])
            params = [p - LEARNING_RATE * g for p, g in zip(params, grads)]  # theta <- theta - eta dJ/dtheta
        history.append((loss(*params, X, Y), accuracy(params, X_test, y_test)))
        print(f"{epoch:5d}  {history[-1][0]:9.5f}  {history[-1][1]:13.3f}")
    steps = epochs * -(-X.shape[0] // BATCH)
    print(f"{epochs} epochs, {steps} SGD steps of {BATCH} samples in {time.perf_counter() - start:.1f} s")
    return params, history


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=EPOCHS,
                        help=f"passes over the training set (default {EPOCHS})")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(SEED)

    X, Y, X_test, y_test = digits()
    print(f"digits: {X.shape[0]} training and {X_test.shape[0]} test images of {X.shape[1]} pixels, 10 classes\n")

    crosscheck_tiny(X, Y, rng)
    params = init_params(X.shape[1], HIDDEN, 10, rng)
    crosscheck_full(params, X[:BATCH], Y[:BATCH])
    check_delta_rule(params, X[:BATCH], Y[:BATCH], "before training")
    print()

    initial = loss(*params, X, Y)
    params, history = train(params, X, Y, X_test, y_test, args.epochs, rng)
    check_delta_rule(params, X[-BATCH:], Y[-BATCH:], "after training")

    final_loss, test_accuracy = history[-1] if history else (initial, accuracy(params, X_test, y_test))
    print(f"\ntraining loss {initial:.5f} -> {final_loss:.5f}; test accuracy {test_accuracy:.3f}")
    if args.epochs >= 1:
        assert final_loss < initial, (initial, final_loss)
    if args.epochs >= 10:
        assert test_accuracy > 0.9, test_accuracy
    else:
        print(f"(test accuracy is checked from 10 epochs on; default {EPOCHS})")


if __name__ == "__main__":
    main()
