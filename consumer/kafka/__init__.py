"""TODO kafka."""
