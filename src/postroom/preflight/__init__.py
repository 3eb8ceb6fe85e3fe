"""Dry runs: what Postroom would do with a message, answered by the same code that accepts and delivers it, without
sending, storing or queueing anything (``POST /v1/messages/explain``)."""
