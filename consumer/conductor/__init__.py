"""Conductor's side: its REST client, the event handlers and example workflows (with the
KAFKA_PUBLISH producer style), the register/write commands, the demo through Conductor.
Top layer: imports contract, never cli/.
"""
