"""Delivery agents: direct SMTP to the recipient's MX, Amazon SES v2, and the policy that picks between them."""
