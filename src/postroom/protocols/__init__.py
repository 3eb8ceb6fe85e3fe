"""Other protocols onto the HTTP API: the IMAP/POP3/SMTP bridge and the SMTP submission service."""
