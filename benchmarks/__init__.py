"""Benchmarks of plan and apply at scale; see README.md. Importable so tests can generate the same stacks."""
