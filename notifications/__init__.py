"""Outbox to Apprise: message texts and delivery."""
