"""Kafka I/O, the only package importing aiokafka: plain records, the consumer-group member
(RecordSource), the acks=all producers (RecordSink; BatchingSink for volume), admin, the
start-up checks and readers. Imports settings.
"""
