"""Telling: who hears what, and the outbox that carries it."""
