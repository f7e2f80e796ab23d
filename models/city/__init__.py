"""The city: departments, people and the reference data loaded from YAML."""
