"""The differentiated arguments, as every operator and backend sees them.

Below both :mod:`diffkit.operators` and the backends: which arguments are
differentiated (``argnums``, checked against the call) and how they are
promoted (integers to float64, object arrays of traced values packed). The
numeric backend's ``*_result`` methods take user calls directly and do the
same as the operators do before calling a backend.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from ..core.values import Value
from ..errors import InvalidType, ShapeError

if TYPE_CHECKING:
    from ..core.function import Function

Argnums = int | Sequence[int]


def _argnums(argnums: Argnums, nargs: int, F: Function, op: str) -> tuple[tuple[int, ...], bool]:
    single = isinstance(argnums, (int, np.integer))
    nums = (int(argnums),) if single else tuple(int(a) for a in argnums)  # type: ignore[union-attr]
    for a in nums:
        if not -nargs <= a < nargs:
            raise ShapeError(f"{op} of {F.name}: argnums={argnums!r} but the function was called "
                             f"with {nargs} argument(s)")
    nums = tuple(a % nargs for a in nums)
    if len(set(nums)) != len(nums):
        raise ShapeError(f"{op} of {F.name}: argnums={argnums!r} names an argument twice")
    return nums, single


def _canon(a: Any, F: Function, i: int, op: str) -> Any:
    """A differentiated argument as a float array (or scalar); ints promote to float64."""
    if type(a) is float or type(a) is np.ndarray and a.ndim and a.dtype.kind in "fc":
        return a  # the common cases, as they are
    if isinstance(a, Value):
        return a
    arr = np.asarray(a)
    if arr.dtype == object:
        from ..core.values import pack

        packed = pack(arr)
        if isinstance(packed, Value):
            return packed
        arr = np.asarray(packed)
    if arr.dtype.kind in "biu":
        arr = arr.astype(np.float64)
    elif arr.dtype.kind not in "fc":
        name = F.variables[i] if i < len(F.variables) else f"#{i}"
        raise InvalidType(f"{op} of {F.name}: argument '{name}' must be numeric, got dtype {arr.dtype}")
    if arr.ndim == 0:
        # Python floats take the table's scalar fast path in the AD backends
        return float(arr) if arr.dtype == np.float64 else arr[()]
    return arr


def _prepare(args: Sequence[Any], nums: Sequence[int], F: Function, op: str) -> list[Any]:
    primals = list(args)
    for i in nums:
        primals[i] = _canon(primals[i], F, i, op)
    return primals
