"""Postroom: serverless transactional email relay."""
