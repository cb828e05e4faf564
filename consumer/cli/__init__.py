"""The commands for people: send, demo, check, dlq, reconcile, and the generated documents
(schema with AsyncAPI, docs).
Top layer: imports anything below, never conductor/.
"""
