"""The commands for people: send, demo, check, dlq, and the generated documents (schema with
AsyncAPI, docs).
Top layer: imports anything below, never conductor/.
"""
