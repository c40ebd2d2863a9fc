"""Benchmarks of diffkit against its peers (``diffkit bench``).

Nothing here is imported by ``import diffkit``; the peers (autograd, JAX,
PyTorch) are imported only when a benchmark asks for them.
"""
