"""Tests of reconciler.state: the document, and the contract every backend passes."""
