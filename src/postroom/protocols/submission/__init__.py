"""SMTP submission (RFC 6409): tools that only know "SMTP settings" hand mail to Postroom's raw send endpoint."""
