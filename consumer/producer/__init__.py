"""The producer helper for Python callers: MeterEventProducer, RequestProducer, requests
checked by the service's decoder before they leave. Imports contract, kafka and settings,
never the engine (an import-linter contract keeps it so).

Both producers are async context managers on a batching, compressed, idempotent Kafka
producer; the contract's Structs are the typed request builders.

Only ``consumer.kafka`` imports aiokafka: the helper reaches Kafka through its
:class:`~consumer.kafka.batching.BatchingSink`.
"""

from consumer.contract.requests import FieldError
from consumer.kafka.records import DeliveryFailed
from consumer.producer.builders import encode_request
from consumer.producer.producers import MeterEventProducer, RequestProducer

__all__ = [
    "DeliveryFailed",
    "FieldError",
    "MeterEventProducer",
    "RequestProducer",
    "encode_request",
]
