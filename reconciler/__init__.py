"""reconciler: a declarative reconciler for model-serving platforms."""

__version__ = "0.1.0"
