"""The pieces of xpnn's benchmark suite; ``benchmarks/run.py`` runs them."""
