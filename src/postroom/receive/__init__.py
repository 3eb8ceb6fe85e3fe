"""Receiving: parse inbound MIME from S3, route it to mailboxes, and apply bounces that come back."""
