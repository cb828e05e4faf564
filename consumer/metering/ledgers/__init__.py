"""TODO metering/ledgers."""
