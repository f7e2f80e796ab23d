"""Prefect flows: orchestration only; every decision is made in models/."""
