"""diffkit's version, in a module of its own: reports and benchmarks read it without
importing the package's public namespace (which imports everything)."""

__version__ = "0.1.0"
