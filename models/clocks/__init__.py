"""Clocks: the working-day calendar, deadlines, and escalation tiers."""
