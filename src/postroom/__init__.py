"""Postroom: serverless transactional email relay."""

# The release, kept in step with pyproject.toml's [project] version. Read from here, not from importlib.metadata:
# the Lambda layer ships the package without its dist-info, so a metadata lookup fails there (test_sam_build).
__version__ = "0.1.0"
