"""The reference every backend is judged against, built without the table's derivative rules.

A reference that used the primitive table's partials would agree with the
forward, reverse and symbolic backends whenever a rule is wrong, and blame the
one backend that is right. So the reference reads only what a primitive *is*
(its SymPy and NumPy forms), never its JVP or VJP rules, and is one of, in
order of preference:

1. **symbolic**: the function traced into SymPy expressions (through the
   table's SymPy forms) and differentiated by SymPy's own rules, node by node
   over the expression DAG (each distinct subexpression once, so the result
   stays the size of the function), then evaluated in mpmath at 50 digits at
   the exact binary value of the point;
2. **mpmath differences**: where there is no SymPy form (``eigh``, code
   SymPy cannot trace), the function evaluated in 60-digit mpmath arithmetic
   and differentiated by central differences with a step far below float64's
   resolution, with an error bound from two step sizes;
3. **AD agreement**: forward and reverse mode agreeing — labelled as the weak
   reference it is, since both read the same rules.

Example:
    >>> import diffkit as dk
    >>> F = dk.Function.parse("sin(x) * exp(y)")
    >>> ref = reference(F, (1.0, 2.0), "grad", (0, 1))
    >>> ref.kind
    "symbolic: SymPy's own derivatives in mpmath, 50 digits"
    >>> [round(float(v), 12) for v in ref.value]        # cos(1) e^2, sin(1) e^2
    [3.992324048441, 6.217676312368]
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
from ..core.lazy import sympy

from ..core.function import Function
from ..errors import DiffkitError, SizeLimitError, TimeLimitError, UnsupportedOperation
from ..limits import recursion_as_size_limit, run_limited
from .report import Reference

SYMBOLIC = "symbolic: SymPy's own derivatives in mpmath, 50 digits"
NUMERIC = "mpmath differences of f, 60 digits (no SymPy form)"
AD_AGREEMENT = "AD agreement (weak: forward and reverse read the same rules)"
NONE = "none"

SIZE_LIMIT = 2000
"""Symbols (argument elements) a symbolic reference is built for at most."""


class NoSymbolicForm(DiffkitError):
    """The function or one of its derivatives has no SymPy form to evaluate."""


# --------------------------------------------------------------------------
# SymPy's own derivatives, once per node of the expression DAG
# --------------------------------------------------------------------------

# Derivatives of piecewise-constant functions: 0 where they exist, and 0 at the
# jump too (the conventions of API §7: sign' = 0 everywhere).
def _step_functions() -> tuple[Any, ...]:
    return (sympy.sign, sympy.floor, sympy.ceiling, sympy.Heaviside, sympy.frac)


def _is_real(e: Any) -> bool:
    return bool(getattr(e, "is_extended_real", False))


class DagDerivative:
    """Derivatives of SymPy expressions with respect to real symbols, memoised per node.

    Forward mode over the expression DAG: a node's tangent (a sparse map from
    symbol index to expression) is the sum of its arguments' tangents times
    SymPy's own partial derivative of the node's function (``sympy.diff`` of
    the node with its arguments replaced by dummies). Functions that are not
    holomorphic in a complex argument (``re``, ``im``, ``conjugate``, ``Abs``,
    ``arg``) act on the tangent as the real-linear maps they are.

    Example:
        >>> x, y = sympy.symbols("x y", real=True)
        >>> d = DagDerivative([x, y])
        >>> sorted(d.tangent(sympy.sin(x) * y).items())
        [(0, y*cos(x)), (1, sin(x))]
    """

    def __init__(self, wrt: Sequence[sympy.Symbol]):
        self.wrt = list(wrt)
        self.index = {s: k for k, s in enumerate(self.wrt)}
        self.memo: dict[Any, dict[int, Any]] = {}

    def tangent(self, expr: Any) -> dict[int, Any]:
        """``{k: d expr / d wrt[k]}`` for the nonzero derivatives."""
        expr = sympy.sympify(expr, strict=True)  # SymPy objects and numbers: never text
        stack = [expr]
        memo = self.memo
        while stack:  # iterative postorder: deep expressions need no recursion
            e = stack[-1]
            if e in memo:
                stack.pop()
                continue
            pending = [a for a in self._operands(e) if a not in memo]
            if pending:
                stack.extend(pending)
                continue
            stack.pop()
            memo[e] = self._node(e)
        return memo[expr]

    def _operands(self, e: Any) -> list[Any]:
        if isinstance(e, sympy.Piecewise):
            return [pair.expr for pair in e.args]
        if not isinstance(e, sympy.Expr) or e.is_Atom:
            return []
        return list(e.args)

    def _node(self, e: Any) -> dict[int, Any]:
        memo = self.memo
        if isinstance(e, sympy.Symbol):
            k = self.index.get(e)
            return {} if k is None else {k: sympy.S.One}
        if not isinstance(e, sympy.Expr) or e.is_Atom or not (e.free_symbols & set(self.index)):
            return {}
        if isinstance(e, sympy.Piecewise):  # the selected branch's derivative (API §7)
            keys = sorted({k for pair in e.args for k in memo[pair.expr]})
            return {k: sympy.Piecewise(*[(memo[p.expr].get(k, sympy.S.Zero), p.cond) for p in e.args])
                    for k in keys}
        if isinstance(e, _step_functions()):
            return {}
        (a, *_) = e.args
        if len(e.args) == 1 and not _is_real(a) and isinstance(e, (sympy.re, sympy.im, sympy.conjugate,
                                                                   sympy.Abs, sympy.arg)):
            return self._nonholomorphic(e, a, memo[a])
        return self._chain(e)

    def _chain(self, e: Any) -> dict[int, Any]:
        """Sum over arguments of SymPy's partial derivative times the argument's tangent."""
        args = e.args
        moving = [i for i, a in enumerate(args) if self.memo.get(a)]
        dummies = {i: sympy.Dummy(real=True) if _is_real(args[i]) else sympy.Dummy() for i in moving}
        local = e.func(*[dummies.get(i, a) for i, a in enumerate(args)])
        back = {d: args[i] for i, d in dummies.items()}
        out: dict[int, Any] = {}
        for i in moving:
            partial = _clean(sympy.diff(local, dummies[i])).xreplace(back)
            if partial == 0:
                continue
            for k, t in self.memo[args[i]].items():
                term = partial * t
                out[k] = out[k] + term if k in out else term
        return out

    @staticmethod
    def _nonholomorphic(e: Any, a: Any, ta: dict[int, Any]) -> dict[int, Any]:
        """re, im, conj, |.| and arg of a complex argument: real-linear maps of its tangent."""
        if isinstance(e, sympy.re):
            return {k: sympy.re(t) for k, t in ta.items()}
        if isinstance(e, sympy.im):
            return {k: sympy.im(t) for k, t in ta.items()}
        if isinstance(e, sympy.conjugate):
            return {k: sympy.conjugate(t) for k, t in ta.items()}
        if isinstance(e, sympy.Abs):  # d|a| = re(conj(a) da) / |a|
            return {k: sympy.re(sympy.conjugate(a) * t) / e for k, t in ta.items()}
        return {k: sympy.im(sympy.conjugate(a) * t) / sympy.Abs(a) ** 2 for k, t in ta.items()}  # arg


def _clean(partial: Any) -> Any:
    """A local partial in evaluable form: the derivative of a step function is 0 (API §7)."""
    if partial.has(sympy.DiracDelta):
        partial = partial.replace(lambda n: isinstance(n, sympy.DiracDelta), lambda n: sympy.S.Zero)
    if partial.has(sympy.Derivative):
        partial = partial.replace(lambda n: isinstance(n, sympy.Derivative) and isinstance(n.expr, _step_functions()),
                                  lambda n: sympy.S.Zero)
        if partial.has(sympy.Derivative):
            raise NoSymbolicForm(f"SymPy leaves the derivative unevaluated: {str(partial)[:80]}")
    return partial


def _heaviside_as_piecewise(e: Any) -> Any:
    """Heaviside(x, h0) as a Piecewise mpmath can evaluate (h0 = 1/2 by default, as SymPy)."""
    from ..core.sympy_eval import dag_has

    if not dag_has([e], sympy.Heaviside):
        return e

    def pw(*args: Any) -> Any:
        x = args[0]
        h0 = args[1] if len(args) > 1 else sympy.S.Half
        return sympy.Piecewise((sympy.S.One, x > 0), (sympy.S.Zero, x < 0), (h0, True))

    return e.replace(sympy.Heaviside, pw)


# --------------------------------------------------------------------------
# The symbolic reference
# --------------------------------------------------------------------------


def _array(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=object)


def symbolic_derivative(F: Function, args: Sequence[Any], op: str, argnums: Sequence[int], order: int = 1,
                        dps: int = 50) -> list[Any]:
    """The derivative of ``F`` at ``args`` by SymPy's own rules, as flat mpmath numbers.

    The order of the flat list is that of the operator's result: for ``grad``
    and ``jacobian`` the arguments of ``argnums`` one after the other (each
    ``out.shape + arg.shape``), for ``hessian`` the blocks ``H[i][j]`` row by
    row, for ``derivative`` one number.

    Raises:
        NoSymbolicForm: SymPy cannot trace ``F`` or evaluate a derivative.
        SizeLimitError: over a limit of the symbolic trace, or nested too deeply
            for SymPy's recursive algorithms.
    """
    with recursion_as_size_limit("the symbolic reference"):
        return _symbolic_derivative(F, args, op, argnums, order, dps)


def _symbolic_derivative(F: Function, args: Sequence[Any], op: str, argnums: Sequence[int], order: int,
                         dps: int) -> list[Any]:
    import mpmath

    from ..backends.symbolic import expr_of, lambdify, trace_args

    primals = [float(a) if np.ndim(a) == 0 and _numeric(a) else
               (np.asarray(a, dtype=float) if _numeric(a) else a) for a in args]
    try:
        # at the point: Python control flow takes the point's branch (the derivative is the
        # branch's, valid there), and the arguments not differentiated stay numbers
        constants = [i for i, a in enumerate(args) if i not in argnums and _numeric(a)]
        traced = trace_args(F.fn, primals, SIZE_LIMIT, at_point=True, constants=constants)
        out = _array(expr_of(F.fn(*traced.args)))
    except (SizeLimitError, NoSymbolicForm):
        raise
    except Exception as e:  # noqa: BLE001 - any failure to trace means: no SymPy form
        raise NoSymbolicForm(f"SymPy cannot trace the function ({type(e).__name__}: {str(e)[:120]})") from e
    groups = []
    start = 0
    offsets = []
    for i, shape in enumerate(traced.shapes):
        n = 0 if shape is None else int(np.prod(shape, dtype=int))
        offsets.append(start)
        start += n
    for i in argnums:
        shape = traced.shapes[i]
        if shape is None:
            raise NoSymbolicForm(f"argument {i} is not numeric")
        n = int(np.prod(shape, dtype=int))
        groups.append((i, shape, list(range(offsets[i], offsets[i] + n))))
    wrt = traced.symbols
    dag = DagDerivative(wrt)

    def jac(exprs: np.ndarray, group: tuple[int, tuple[int, ...], list[int]]) -> np.ndarray:
        _, shape, cols = group
        res = np.empty(exprs.shape + (len(cols),), dtype=object)
        for idx in np.ndindex(exprs.shape):
            t = dag.tangent(exprs[idx])
            res[idx] = [t.get(c, sympy.S.Zero) for c in cols]
        return res.reshape(exprs.shape + tuple(shape))

    leaves: list[Any] = []
    if op in ("grad", "jacobian"):
        for g in groups:
            leaves.extend(jac(out, g).ravel().tolist())
    elif op == "hessian":
        firsts = [jac(out, g) for g in groups]
        for fi in firsts:
            for g in groups:
                leaves.extend(jac(fi, g).ravel().tolist())
    elif op == "derivative":
        (g,) = groups[:1]
        e = out
        for _ in range(order):
            e = jac(e, g)
        leaves.extend(e.ravel().tolist())
    else:
        raise UnsupportedOperation(f"symbolic reference of op {op!r}")
    leaves = [_heaviside_as_piecewise(sympy.sympify(e, strict=True)) for e in leaves]
    from ..core.sympy_eval import dag_has

    if dag_has(leaves, sympy.Derivative, sympy.Subs):
        raise NoSymbolicForm("a derivative stays unevaluated in SymPy")
    with mpmath.workdps(dps):
        fn = lambdify(wrt, leaves, "mpmath")
        point = [mpmath.mpf(float(v)) for v in _flat_point(primals, traced.shapes)]  # exact dyadic values
        try:
            values = fn(*point)
        except (ZeroDivisionError, ValueError, OverflowError):
            # a derivative that is infinite at the point (sqrt at 0): element by element
            values = [_edge_value(lambdify(wrt, [leaf], "mpmath"), point) for leaf in leaves]
        except Exception as e:  # noqa: BLE001 - an expression mpmath cannot evaluate
            raise NoSymbolicForm(f"mpmath cannot evaluate the derivative ({type(e).__name__}: {e})") from e
    return [_real_mp(v) for v in (values if isinstance(values, (list, tuple)) else [values])]


def _edge_value(fn: Callable[..., Any], point: list[Any]) -> Any:
    """One derivative where evaluating it at the point fails: ±inf when it grows without bound
    as the point is approached from inside the domain (both sides, or the one side that is
    real), NaN when it has no value there."""
    import mpmath

    try:
        (v,) = fn(*point)
        return v
    except (ZeroDivisionError, ValueError, OverflowError):
        pass
    near = []
    for sign in (1, -1):
        moved = [x + sign * mpmath.mpf(10) ** -40 * max(1, abs(x)) for x in point]
        try:
            (v,) = fn(*moved)
        except (ZeroDivisionError, ValueError, OverflowError):
            continue
        if isinstance(v, mpmath.mpc):
            if v.imag != 0:
                continue  # outside the domain on this side
            v = v.real
        near.append(v)
    if near and all(abs(v) > mpmath.mpf(10) ** 15 for v in near) and len({v > 0 for v in near}) == 1:
        return mpmath.inf if near[0] > 0 else -mpmath.inf
    return mpmath.nan


def _real_mp(v: Any) -> Any:
    import mpmath

    if isinstance(v, mpmath.mpc):
        if v.imag != 0 and abs(v.imag) > mpmath.mpf(10) ** (-40) * max(abs(v.real), 1):
            return mpmath.nan  # outside the real function's domain: no derivative there
        return v.real
    return v


def _flat_point(primals: Sequence[Any], shapes: Sequence[Any]) -> list[float]:
    flat: list[float] = []
    for p, shape in zip(primals, shapes):
        if shape is not None:
            flat.extend(np.asarray(p, dtype=float).ravel().tolist())
    return flat


def _numeric(a: Any) -> bool:
    if isinstance(a, (bool, np.bool_)):
        return False
    return isinstance(a, (int, float, np.number)) or (isinstance(a, np.ndarray) and a.dtype.kind in "iuf")


# --------------------------------------------------------------------------
# The reference, with its fallbacks
# --------------------------------------------------------------------------


def reference(F: Function, args: Sequence[Any], op: str, argnums: Any, order: int = 1,
              tangents: Any = None, cotangent: Any = None, dps: int = 50,
              ad: Callable[[str], np.ndarray] | None = None, timeout: float | None = None) -> Reference:
    """The reference for one derivative: symbolic, else mpmath differences, else AD agreement.

    ``ad(backend)`` computes the derivative on an AD backend (flattened), for the
    last resort; ``None`` skips it. ``timeout`` bounds the symbolic reference
    and then the mpmath one, each in a child process: past it the reference
    falls back to the next kind, with the limit in its note.
    """
    nums = _nums(op, argnums, len(args))
    notes = []
    base_op = "jacobian" if op in ("jvp", "vjp") else op
    try:
        flat = run_limited(symbolic_derivative, F, args, base_op, nums, order, dps, timeout=timeout,
                           what="the symbolic reference", hint="the cross-check's time limit shared out")
        value = _contract(flat, F, args, op, nums, tangents, cotangent)
        return Reference(value, SYMBOLIC)
    except (NoSymbolicForm, SizeLimitError, UnsupportedOperation, TimeLimitError) as e:
        notes.append(f"no symbolic reference ({_one_line(e)})")
    try:
        from .mp_numeric import numeric_derivative

        flat, err = run_limited(numeric_derivative, F, args, base_op, nums, order, timeout=timeout,
                                what="the mpmath reference", hint="the cross-check's time limit shared out")
        value = _contract(flat, F, args, op, nums, tangents, cotangent)
        return Reference(value, NUMERIC, "; ".join(notes), error=err)
    except Exception as e:  # noqa: BLE001 - the function cannot run in mpmath
        notes.append(f"no mpmath reference ({_one_line(e)})")
    if ad is not None:
        values = {}
        for b in ("forward", "reverse"):
            try:
                values[b] = ad(b)
            except Exception as e:  # noqa: BLE001 - that backend fails: the row will say why
                notes.append(f"{b} failed ({type(e).__name__})")
        if len(values) == 2:
            a, b = values["forward"], values["reverse"]
            scale = max(1.0, float(np.max(np.abs(b), initial=0.0)))
            with np.errstate(invalid="ignore"):
                close = (a == b) | (np.isnan(a) & np.isnan(b)) | (np.abs(a - b) <= 256 * np.finfo(float).eps * scale)
            if a.shape == b.shape and np.all(close):
                return Reference(b, AD_AGREEMENT, "; ".join(notes))
            notes.append("forward and reverse disagree")
    return Reference(None, NONE, "; ".join(notes))


def _nums(op: str, argnums: Any, nargs: int) -> tuple[int, ...]:
    if op in ("jvp", "vjp"):
        return tuple(range(nargs))
    return (int(argnums),) if isinstance(argnums, (int, np.integer)) else tuple(int(a) for a in argnums)


def _contract(flat: list[Any], F: Function, args: Sequence[Any], op: str, nums: Sequence[int],
              tangents: Any, cotangent: Any) -> np.ndarray:
    """The flat reference as float64; for jvp/vjp the Jacobian contracted in mpmath first."""
    import mpmath

    if op not in ("jvp", "vjp"):
        return np.array([float(v) for v in flat], dtype=np.float64)
    # the Jacobian's blocks: out.shape + arg.shape per argument, one after the other
    sizes = [int(np.size(args[i])) for i in nums]
    m = len(flat) // max(sum(sizes), 1)
    blocks, start = [], 0
    for n in sizes:
        blocks.append(np.array(flat[start:start + m * n], dtype=object).reshape(m, n))
        start += m * n
    with mpmath.workdps(50):
        if op == "jvp":
            total = [mpmath.mpf(0)] * m
            for blk, t in zip(blocks, tangents):
                tv = [mpmath.mpf(float(v)) for v in np.ravel(t)]
                for r in range(m):
                    total[r] += mpmath.fsum(blk[r, c] * tv[c] for c in range(len(tv)))
            return np.array([float(v) for v in total])
        cv = [mpmath.mpf(float(v)) for v in np.ravel(cotangent)]
        out: list[float] = []
        for blk in blocks:
            out.extend(float(mpmath.fsum(cv[r] * blk[r, c] for r in range(m))) for c in range(blk.shape[1]))
        return np.array(out)


def _one_line(e: BaseException) -> str:
    s = str(e).strip().splitlines()
    return f"{type(e).__name__}: {s[0][:160] if s else ''}"
