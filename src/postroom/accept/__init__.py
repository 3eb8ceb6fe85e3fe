"""The accept path: validate a send request (JSON or raw MIME), compose it, persist it and queue it for delivery."""
