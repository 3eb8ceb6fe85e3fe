"""Asynchronous bounces: DSNs (RFC 3464) parsed and applied to the message they are about."""
