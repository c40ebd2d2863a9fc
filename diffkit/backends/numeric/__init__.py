"""The numeric backend: derivatives from function values, with honest error estimates.

Every operator reduces to derivatives of the user's function along lines
``t -> f(x + t u)``: a gradient or Jacobian along the coordinate directions,
a JVP along the tangent, an n-th derivative along the one axis, a Hessian
along ``u_i`` and ``u_i + u_j`` (polarization). Each direction is scaled by
the magnitude of its coordinates (``max(|x_i|, 1)``), so ``t`` is a relative
step. Three ways to differentiate along a line:

* **complex step** (first derivatives): ``Im f(x + i h u) / h`` has no
  subtraction, so a tiny ``h`` gives the derivative to round-off in one
  evaluation (Squire and Trapp 1998). Higher orders use ``n`` points on a
  circle of radius ``r`` in the complex plane, placed so that the function
  value itself drops out of the imaginary parts (Lyness and Moler 1967);
  the error is ``O(r**(2n))`` and Richardson extrapolation over shrinking
  radii removes it. The function is evaluated on complex values *through
  diffkit's dispatch*, which records every primitive met: complex step is
  used only if every one of them is complex-analytic in the table (NumPy's
  own complex semantics differ, e.g. ``np.linalg.norm`` conjugates).
* **Richardson extrapolation** of finite differences over a geometric
  sequence of steps, with an error estimate for each extrapolated value and
  the best one kept (as numdifftools does), stopping as soon as round-off
  takes over; one-sided stencils where a central one leaves the domain.
* plain **forward, backward and central** stencils of any accuracy order,
  with weights from Fornberg's algorithm and dtype-aware steps
  ``eps**(1/(n+p))``.

``method="auto"`` takes the complex step where the function allows it and
Richardson-extrapolated central differences elsewhere. Every result method
(:meth:`Numeric.derivative_result` and friends) returns a
:class:`NumericResult`: value, error estimate, method, step, number of
function evaluations and, on a fallback, the reason.

The package, by concern:

* :mod:`.stencils`: Fornberg weights, stencil offsets, Richardson weights (pure NumPy);
* :mod:`.probe`: the complex probe, evaluation on complex values through diffkit's dispatch;
* :mod:`.evaluator`: the function at many points, and the facts kept per function;
* :mod:`.lines`: one estimate per direction (complex step, finite differences,
  complex contour), with steps fitted to the domain and away from kinks;
* :mod:`.ladder`: Richardson extrapolation over a ladder of steps;
* :mod:`.backend`: :class:`Numeric` and :class:`NumericResult`.
"""

from __future__ import annotations

from .backend import METHODS, Numeric, NumericResult
from .probe import complex_values
from .stencils import fornberg_weights

__all__ = ["Numeric", "NumericResult", "METHODS", "complex_values", "fornberg_weights"]
