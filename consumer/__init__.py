"""stripe-consumer: Stripe operations for Conductor workflows, over Kafka."""

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("stripe-consumer")
except _metadata.PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+source"
