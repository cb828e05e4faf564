"""What operators see: Prometheus metrics, structured logs, the redaction of secrets, health
and the HTTP endpoints. Imports nothing of the service (the health probe reads the running
parts through protocols).
"""
