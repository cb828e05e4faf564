"""The commands for people: send, demo, check, and the generated documents (schema, docs).
Top layer: imports anything below, never conductor/.
"""
