"""The durable stream registry (issue 14): ``interface`` and the backends beside it."""
