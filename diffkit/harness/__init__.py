"""The harness: cross-check every backend against a high-precision reference, and run suites."""

from .crosscheck import OPS, assert_backends_agree, crosscheck, reference
from .kinks import find_kinks
from .report import Reference, Report, Row

__all__ = ["OPS", "Reference", "Report", "Row", "assert_backends_agree", "crosscheck", "find_kinks", "reference"]
