"""Shared basics every layer may use: settings, AWS clients, ids, clock, errors, the message record and its store."""
