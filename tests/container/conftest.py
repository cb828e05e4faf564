"""Container tier: the images built here with podman (deploy/local/images.py), run against
the local stack's real broker; testcontainers through podman's Docker-compatible socket;
docker-compose.yml against the Compose specification and podman-compose.

Where podman cannot run (not installed and no apt-get to install it), every test that needs it
is skipped with that one-line reason; `make test` builds the images before the tests start."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from types import ModuleType

import pytest

from tests.support.stack import load_local_script


@pytest.fixture(scope="session")
def images() -> ModuleType:
    """deploy/local/images.py, once podman is known to run here (else the test is skipped)."""
    module = load_local_script("images")
    reason = module.podman.unavailable_reason()
    if reason is not None:
        pytest.skip(f"podman cannot run here: {reason}")
    return module


@pytest.fixture(scope="session")
def service_image(images: ModuleType) -> Iterator[str]:
    """The service's image, built from this checkout's Dockerfile on the local Debian base,
    under a tag of this session's own (another checkout's session may build at the same
    time); podman's layer cache makes it quick after `make images`. Untagged at the end."""
    tag, _ = images.build_service(f"{images.REPOSITORY}:test-{uuid.uuid4().hex[:8]}")
    yield str(tag)
    images.podman.podman_ok("rmi", tag)


@pytest.fixture(scope="session")
def base_image(images: ModuleType) -> str:
    return str(images.ensure_base())


@pytest.fixture(scope="session")
def kafka_image(images: ModuleType) -> str:
    return str(images.ensure_kafka())


@pytest.fixture(scope="session")
def redis_image(images: ModuleType) -> str:
    return str(images.ensure_redis())


@pytest.fixture(scope="session")
def stripe_mock_image(images: ModuleType) -> str:
    return str(images.ensure_stripe_mock())


@pytest.fixture(scope="session")
def docker_api(images: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """podman's Docker-compatible API on a private socket, and the environment a
    testcontainers user sets for it (DOCKER_HOST, Ryuk off). testcontainers reads its
    settings when first imported: test modules import it only inside their fixtures."""
    directory = tmp_path_factory.mktemp("podman-api")
    with (
        images.podman.api_socket(directory / "podman.sock", directory / "service.log") as env,
        pytest.MonkeyPatch.context() as patch,
    ):
        for name, value in env.items():
            patch.setenv(name, value)
        yield str(env["DOCKER_HOST"])
