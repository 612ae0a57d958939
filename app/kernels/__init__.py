"""Ops: each wraps one shader file of shaders/ (named after the op) with its shapes and dispatch."""
