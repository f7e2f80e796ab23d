"""Routing: the keyword catalogue, the classifier and its store, dispatch, duplicates, policy Q&A."""
