"""Delivery events: what happened to each recipient of each message, from SES's event publishing, from the worker's own
SMTP results and from tracking links, recorded once each, in order, per message and per tenant."""
