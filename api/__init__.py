"""FastAPI: one router per audience, thin over models/."""
