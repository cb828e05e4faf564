"""record -> job -> scheduled -> executed -> answered -> committed: the pipeline, the request
processor, offsets, the per-key scheduler, replies, the reply memory. Imports every layer
below it; never app or the commands.
"""
