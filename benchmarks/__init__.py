"""Benchmarks: each module with a ``main(argv)`` is one benchmark; ``python -m benchmarks.run_all`` runs them all."""
