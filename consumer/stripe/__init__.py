"""TODO stripe."""
