"""Local stack: the deployed template's resources emulated on a moto server, around the real handlers."""
