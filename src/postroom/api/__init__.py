"""The HTTP API: a Powertools resolver with routers per resource, errors rendered in one place."""
