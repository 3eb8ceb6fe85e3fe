"""Persistence adapters: DynamoDB items and S3 objects. The only modules here that know the table's layout."""
