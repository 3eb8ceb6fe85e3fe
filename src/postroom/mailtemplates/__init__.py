"""Stored mail templates: sandboxed Jinja2 rendering, CSS inlining, the built-in commerce templates, DynamoDB storage."""
