"""Stands for a monorepo's own TensorFlow py_library in an analysis test."""
