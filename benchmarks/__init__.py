"""Benchmarks of the customer-activity store (issue 6): python -m benchmarks run --customers N."""
