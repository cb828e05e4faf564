"""Kafka I/O, the only package importing aiokafka: plain records, the consumer-group member
(RecordSource), the acks=all producer (RecordSink), admin and readers. Imports settings.
"""
