"""Buying apples (and oranges): backpropagation on the notes' shopping graphs.

Retells the apple example of seed notes 002 ("Deep Learning from Scratch",
chapter 5: computational graphs, local computation, the chain rule) and the
apple-and-orange exercise of note 004 (worked examples 1 and 2 of
docs/tutorial.md):

* 2 apples at 100 each with 10% tax cost 100 * 2 * 1.1 = 220. Backward from the
  total: d total/d apple_price = 2.2, d total/d apple_count = 110,
  d total/d tax = 200.
* 2 apples at 100 and 3 oranges at 150 with 10% tax cost 715.
  d/d apple_price = 2.2, d/d apple_count = 110, d/d orange_price = 3.3,
  d/d orange_count = 165, d/d tax = 650.

Each graph is an ordinary Python function of named arguments. Every backend
of diffkit differentiates it, a table compares them with the notes' numbers,
and the script fails if any differs. It then replays the notes' backward pass
node by node (each node only knows its own local derivative) and checks that
the product of the local derivatives is the end-to-end gradient. Finally
``dk.graph`` traces each function into the computational graph of the notes'
figures: every node with its forward value and its gradient; ``--out DIR``
draws them (SVG and PNG, values in blue over gradients in red on each edge).

Run:  python examples/apple.py [--out DIR]
"""

from __future__ import annotations

import argparse
import pathlib

import numpy as np

import diffkit as dk

# --- the two computational graphs ------------------------------------------------------


def apple_total(apple_price, apple_count, tax):
    """Problem 1 of note 004: two multiply nodes."""
    apple_cost = apple_price * apple_count  # multiply node: 100 * 2 = 200
    return apple_cost * tax  # multiply node: 200 * 1.1 = 220


def fruit_total(apple_price, apple_count, orange_price, orange_count, tax):
    """Problem 2 of note 004: three multiply nodes and one add node."""
    apple_cost = apple_price * apple_count  # 100 * 2 = 200
    orange_cost = orange_price * orange_count  # 150 * 3 = 450
    subtotal = apple_cost + orange_cost  # add node: 650
    return subtotal * tax  # 650 * 1.1 = 715


APPLE_POINT = dict(apple_price=100.0, apple_count=2.0, tax=1.1)
# the notes' numbers: the total, then d total / d each argument
APPLE_NOTES = dict(total=220.0, apple_price=2.2, apple_count=110.0, tax=200.0)

FRUIT_POINT = dict(apple_price=100.0, apple_count=2.0, orange_price=150.0, orange_count=3.0, tax=1.1)
FRUIT_NOTES = dict(total=715.0, apple_price=2.2, apple_count=110.0, orange_price=3.3,
                   orange_count=165.0, tax=650.0)

RTOL = 1e-14  # every backend is exact to a few roundings here (the numeric one by the complex step)


# --- every backend on one graph ------------------------------------------------------------


def gradients(fn, point, backend):
    """``{"total": f, name: d total / d name, ...}`` from one ``dk.value_and_grad`` call."""
    names = dk.Function(fn).variables  # the argument names, read from the signature
    args = [point[name] for name in names]
    total, grads = dk.value_and_grad(fn, argnums=tuple(range(len(names))), backend=backend)(*args)
    return {"total": float(total), **{name: float(g) for name, g in zip(names, grads)}}


def check_graph(title, fn, point, notes):
    """Differentiate ``fn`` at ``point`` on every backend, print a table, check the notes' numbers."""
    results = {backend: gradients(fn, point, backend) for backend in dk.backends()}
    print(f"{title}: {', '.join(f'{k} = {v:g}' for k, v in point.items())}")
    header = ["", "notes", *results]
    rows = [[("total" if key == "total" else f"d total/d {key}"), f"{want:g}",
             *(f"{results[b][key]:.15g}" for b in results)] for key, want in notes.items()]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        print(("  " + "  ".join(cell.ljust(w) for cell, w in zip(r, widths))).rstrip())
    for backend, got in results.items():
        for key, want in notes.items():
            assert np.isclose(got[key], want, rtol=RTOL, atol=0), (title, backend, key, got[key], want)
    print()
    return results


# --- the notes' backward pass, one node at a time ---------------------------------------------


def mul(a, b):
    return a * b


def add(a, b):
    return a + b


def local_grads(node, a, b, backend):
    """The local derivatives (d out/d a, d out/d b) of one node: all a node needs to know."""
    da, db = dk.grad(node, argnums=(0, 1), backend=backend)(a, b)
    return float(da), float(db)


def backward_node_by_node(backend):
    """Backpropagate through the apple-and-orange graph node by node, right to left.

    Each node multiplies the derivative arriving from its right (``upstream``)
    by its own local derivatives: the add node passes it on unchanged, a
    multiply node passes on the upstream derivative times the *other* input.
    """
    p = FRUIT_POINT
    apple_cost = p["apple_price"] * p["apple_count"]
    orange_cost = p["orange_price"] * p["orange_count"]
    subtotal = apple_cost + orange_cost
    d_total = 1.0  # d total / d total
    d_subtotal, d_tax = (d_total * g for g in local_grads(mul, subtotal, p["tax"], backend))
    d_apple_cost, d_orange_cost = (d_subtotal * g for g in local_grads(add, apple_cost, orange_cost, backend))
    d_apple_price, d_apple_count = (d_apple_cost * g
                                    for g in local_grads(mul, p["apple_price"], p["apple_count"], backend))
    d_orange_price, d_orange_count = (d_orange_cost * g
                                      for g in local_grads(mul, p["orange_price"], p["orange_count"], backend))
    return dict(total=d_total, subtotal=d_subtotal, apple_cost=d_apple_cost, orange_cost=d_orange_cost,
                apple_price=d_apple_price, apple_count=d_apple_count, orange_price=d_orange_price,
                orange_count=d_orange_count, tax=d_tax)


def check_backward(end_to_end):
    print("apple and orange, backward node by node (d total / d each value, right to left):")
    for backend in dk.backends():
        flow = backward_node_by_node(backend)
        if backend == "reverse":
            print("  " + ", ".join(f"{k} {v:g}" for k, v in flow.items()))
            print(f"  apple price path: {flow['total']:g} -> {flow['subtotal']:g} (x tax) -> "
                  f"{flow['apple_cost']:g} (add passes it on) -> {flow['apple_price']:g} (x apple count)")
        # the product of local derivatives is the end-to-end gradient of every backend
        for name in FRUIT_POINT:
            assert np.isclose(flow[name], end_to_end[backend][name], rtol=RTOL, atol=0), (backend, name)
        assert flow["subtotal"] == flow["apple_cost"] == flow["orange_cost"]  # add nodes copy the gradient
    print("  (same on every backend, and equal to the end-to-end gradients above)")


# --- the picture: the computational graph with values and gradients -----------------------


def draw(title, fn, point, notes, out):
    """``dk.graph``: every node's value and gradient; its inputs' gradients are the notes' numbers."""
    graph = dk.graph(fn, *point.values())
    print(f"{title}, the computational graph (node values forward, gradients backward):")
    print("  " + str(graph).replace("\n", "\n  "))
    assert np.isclose(float(graph.value), notes["total"], rtol=RTOL, atol=0)
    for name in point:
        assert np.isclose(float(graph.node(name).grad), notes[name], rtol=RTOL, atol=0), (title, name)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        stem = title.replace(" ", "_")
        for ext in ("svg", "png"):
            print(f"  drew {graph.save(out / f'{stem}.{ext}')}")
    print()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, help="draw the two graphs into this folder (SVG and PNG)")
    args = parser.parse_args(argv)
    check_graph("apple", apple_total, APPLE_POINT, APPLE_NOTES)
    fruit = check_graph("apple and orange", fruit_total, FRUIT_POINT, FRUIT_NOTES)
    check_backward(fruit)
    print()
    draw("apple", apple_total, APPLE_POINT, APPLE_NOTES, args.out)
    draw("apple and orange", fruit_total, FRUIT_POINT, FRUIT_NOTES, args.out)
    print("all numbers of the notes reproduced on backends: " + ", ".join(dk.backends()))


if __name__ == "__main__":
    main()
