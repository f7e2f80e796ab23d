"""The domain: tables and the rules that govern them. Imports no FastAPI, Prefect or RQ."""
