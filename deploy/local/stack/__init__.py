"""The local stack without Docker: install, start, check and stop Kafka, stripe-mock, Redis
and Conductor on 127.0.0.1 (``python3 deploy/local/stack --help``).

Stdlib only (it runs with the system python3, before any venv): its modules import the
standard library and each other, nothing else. This face names what other files use.
"""

from .downloads import cache_dir, complete, file_lock, installing
from .kafka_broker import KAFKA_VERSION, install_kafka
from .kafka_config import KAFKA_LOG4J, kafka_cluster_id
from .lifecycle import (
    down,
    install,
    kill_kafka,
    main,
    restart_kafka,
    start_kafka,
    status,
    stop_kafka,
    up,
)
from .shell import StackError, run, say, tool
from .stack_dir import REPO_ROOT
from .stripe_mock import STRIPE_MOCK_VERSION, install_stripe_mock

__all__ = [
    "KAFKA_LOG4J",
    "KAFKA_VERSION",
    "REPO_ROOT",
    "STRIPE_MOCK_VERSION",
    "StackError",
    "cache_dir",
    "complete",
    "down",
    "file_lock",
    "install",
    "install_kafka",
    "install_stripe_mock",
    "installing",
    "kafka_cluster_id",
    "kill_kafka",
    "main",
    "restart_kafka",
    "run",
    "say",
    "start_kafka",
    "status",
    "stop_kafka",
    "tool",
    "up",
]
