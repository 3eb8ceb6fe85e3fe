"""Delivery: choose the path, sign, pace, and hand each message to SES, direct SMTP (MX) or a smart host."""
