"""Stored mail templates: sandboxed Jinja2 rendering, CSS inlining, built-in commerce templates, DynamoDB storage."""
