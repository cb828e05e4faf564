"""Conductor's side: its REST client, the event handlers and example workflows, the
register/write commands, the demo through Conductor. Top layer: imports contract, never cli/.
"""
