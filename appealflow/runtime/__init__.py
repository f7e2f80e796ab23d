"""The running system: starting and stopping its processes (Redis, Prefect's server, the API,
workers), keeping them alive, and the demo's appeals."""
