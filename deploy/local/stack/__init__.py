"""The local stack without Docker (``python3 deploy/local/stack --help``): a module per
component (kafka_broker, stripe_mock, redis_server, redis_cluster, conductor_server), what
they share, and the orchestrator (launch, lifecycle, cli). Stdlib only (it runs before any
venv); a component never imports the orchestrator. This face names what other files use."""

from .cli import main
from .downloads import apt_install, cache_dir, complete, file_lock, installing
from .kafka_acls import ServiceGrants
from .kafka_broker import KAFKA_VERSION, install_kafka
from .kafka_cluster import kill_node, start_node
from .kafka_config import KAFKA_LOG4J, kafka_cluster_id
from .lifecycle import (
    down,
    grant_acls,
    install,
    kill_kafka,
    restart_kafka,
    start_kafka,
    start_redis_cluster,
    status,
    stop_kafka,
    up,
)
from .shell import StackError, as_root, run, say, tool
from .stack_dir import REPO_ROOT
from .stripe_mock import STRIPE_MOCK_VERSION, install_stripe_mock

__all__ = [
    "KAFKA_LOG4J",
    "KAFKA_VERSION",
    "REPO_ROOT",
    "STRIPE_MOCK_VERSION",
    "ServiceGrants",
    "StackError",
    "apt_install",
    "as_root",
    "cache_dir",
    "complete",
    "down",
    "file_lock",
    "grant_acls",
    "install",
    "install_kafka",
    "install_stripe_mock",
    "installing",
    "kafka_cluster_id",
    "kill_kafka",
    "kill_node",
    "main",
    "restart_kafka",
    "run",
    "say",
    "start_kafka",
    "start_node",
    "start_redis_cluster",
    "status",
    "stop_kafka",
    "tool",
    "up",
]
