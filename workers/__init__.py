"""RQ: the queue, wake-up jobs, and the worker entry point."""
