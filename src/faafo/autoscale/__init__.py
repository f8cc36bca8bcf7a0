"""Sizing the worker pool by the backlog: the decision, its back ends, and the loop."""
