"""Deliverability: DKIM signing, TLS policy and MTA-STS, bounce classification and DSN parsing (see README)."""
