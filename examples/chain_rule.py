"""The chain rule on z = (x + y)^2, symbolically, numerically and by AD.

Retells the chain-rule example of seed notes 001 and 002 (worked example 3 of
docs/tutorial.md): z = (x + y)^2 has dz/dx = dz/dy = 2 (x + y). The
notes obtain it in two steps, with the intermediate t = x + y:

    z = t^2,  t = x + y   =>   dz/dx = dz/dt * dt/dx = 2t * 1 = 2 (x + y).

This script

1. prints the derivative as an expression (``dk.diff``, the symbolic backend)
   and checks with SymPy that it equals 2 (x + y);
2. differentiates the same Python function on every backend at a few points
   and checks dz/dx = dz/dy = 2 (x + y);
3. replays the chain rule in steps, each local derivative computed by diffkit
   (``dk.derivative`` of z = t^2, ``dk.grad`` of t = x + y), and checks that
   their product is the derivative of the whole.

Run:  python examples/chain_rule.py
"""

from __future__ import annotations

import argparse

import numpy as np
import sympy

import diffkit as dk


def z_of_xy(x, y):
    return (x + y) ** 2


def t_of_xy(x, y):
    """The intermediate node t = x + y."""
    return x + y


def z_of_t(t):
    """The outer node z = t^2."""
    return t**2


POINTS = [(1.0, 2.0), (-3.0, 0.5), (0.0, 0.0), (2.5, -7.25)]


def symbolic_part():
    x, y, t = sympy.symbols("x y t", real=True)
    dz_dx, dz_dy = dk.diff(z_of_xy, "x"), dk.diff(z_of_xy, "y")
    dz_dt, dt_dx = dk.diff(z_of_t), dk.diff(t_of_xy, "x")
    print("symbolic (dk.diff):")
    print(f"  dz/dx = {dz_dx}")
    print(f"  dz/dy = {dz_dy}")
    print(f"  in steps: dz/dt = {dz_dt}, dt/dx = {dt_dx}; dz/dt * dt/dx with t = x + y: "
          f"{sympy.expand(dz_dt.subs(t, x + y) * dt_dx)}")
    # dk.diff makes real symbols named after the arguments; compare with SymPy's own
    names = {s.name: s for s in dz_dx.free_symbols | dz_dt.free_symbols}
    X, Y, T = (names.get(n, s) for n, s in (("x", x), ("y", y), ("t", t)))
    assert sympy.simplify(dz_dx - 2 * (X + Y)) == 0
    assert sympy.simplify(dz_dy - 2 * (X + Y)) == 0
    assert sympy.simplify(dz_dt - 2 * T) == 0 and dt_dx == 1
    assert sympy.simplify(dz_dt.subs(T, X + Y) * dt_dx - dz_dx) == 0
    print()


def every_backend():
    print("dz/dx and dz/dy of z = (x + y)^2 on every backend, against 2 (x + y):")
    backends = dk.backends()
    print(("  " + "(x, y)".ljust(14) + "2(x + y)".ljust(10) + "".join(b.ljust(14) for b in backends)).rstrip())
    for x, y in POINTS:
        want = 2 * (x + y)
        cells = []
        for backend in backends:
            dx, dy = dk.grad(z_of_xy, argnums=(0, 1), backend=backend)(x, y)
            assert np.isclose(dx, want, rtol=1e-14, atol=1e-14) and np.isclose(dy, want, rtol=1e-14, atol=1e-14), \
                (backend, x, y, dx, dy)
            cells.append(f"{dx:g}, {dy:g}")
        print(("  " + f"({x:g}, {y:g})".ljust(14) + f"{want:g}".ljust(10)
               + "".join(c.ljust(14) for c in cells)).rstrip())
    print()


def chain_in_steps():
    print("the chain rule in steps (each factor from diffkit), against the derivative of the whole:")
    for x, y in POINTS:
        for backend in dk.backends():
            t = t_of_xy(x, y)  # forward: the intermediate value
            dz_dt = dk.derivative(z_of_t, backend=backend)(t)  # local derivative of the outer node
            dt_dx, dt_dy = dk.grad(t_of_xy, argnums=(0, 1), backend=backend)(x, y)  # of the add node
            dz_dx, dz_dy = dk.grad(z_of_xy, argnums=(0, 1), backend=backend)(x, y)  # of the whole
            assert np.isclose(dz_dt * dt_dx, dz_dx, rtol=1e-14, atol=1e-14), (backend, x, y)
            assert np.isclose(dz_dt * dt_dy, dz_dy, rtol=1e-14, atol=1e-14), (backend, x, y)
            assert np.isclose(dz_dt, 2 * t, rtol=1e-14, atol=1e-14) and dt_dx == dt_dy == 1.0
        print(f"  x = {x:g}, y = {y:g}: t = {t:g}, dz/dt = {dz_dt:g}, dt/dx = {dt_dx:g}, "
              f"dz/dt * dt/dx = {dz_dt * dt_dx:g} = dz/dx = {dz_dx:g}")
    print("  (checked on every backend: " + ", ".join(dk.backends()) + ")")


def main(argv=None):
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
    symbolic_part()
    every_backend()
    chain_in_steps()


if __name__ == "__main__":
    main()
