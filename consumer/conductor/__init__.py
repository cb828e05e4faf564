"""TODO conductor."""
