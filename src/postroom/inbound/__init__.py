"""Inbound mail: SES (or the local listener) stores the MIME in S3; this package parses it and files it into
mailboxes. See README "Receiving mail"."""
