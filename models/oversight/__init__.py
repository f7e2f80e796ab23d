"""Oversight: what supervisors see (breaches, the three rates, rankings)."""
