"""Open and click tracking, and the one-click unsubscribe link (RFC 8058): signed links in the mail, public routes
that verify them."""
