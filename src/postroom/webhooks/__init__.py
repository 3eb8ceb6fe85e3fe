"""Webhooks out: subscriptions, Standard Webhooks signatures, SSRF-safe delivery with retries over a day and more."""
