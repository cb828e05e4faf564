"""The request processor in its stages: route and prepare, execute (memory, then Stripe),
answer. Imports the engine's replies and reply memory, and the layers below the engine.
"""
