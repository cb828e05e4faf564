#!/usr/bin/env python3
"""Container images built here with podman, from Debian's packages: no image registry needed.

- the **base**: a minimal Debian bookworm made by ``debootstrap`` (its Python is 3.11) with a
  venv first on the PATH, so it offers what the Dockerfile expects of ``python:3.11-slim``
  (``python``, ``pip``, ``useradd``); built once, cached as a root file system archive;
- **kafka**, **redis**, **stripe-mock** on that base (``containerfiles/``), used like the
  apache/kafka, redis and stripe/stripe-mock images (testcontainers, podman-compose);
- the **service** itself, from the project's ``Dockerfile`` with ``BASE_IMAGE`` = the base.

Every image is tagged with a key of what it contains (the recipe, the files, the base's key,
the jars), so a changed recipe builds anew and an unchanged one is never built twice.

Commands::

    install [--if-available]   podman & co. (apt-get), then every image; with --if-available
                               a machine where podman cannot run is reported, not an error
    service [--tag TAG]        (re)build the service image from the Dockerfile
    status                     whether podman runs here, and why not (one line)
    env                        shell lines: CONTAINERS_CONF and each image's tag (for eval)

Cache: ``${XDG_CACHE_HOME:-~/.cache}/stripe-consumer/images/base-<key>.tar.gz`` (the base's
root file system); the images themselves live in podman's store.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import container_engine as podman
import stack

HERE = Path(__file__).resolve().parent
CONTAINERFILES = HERE / "containerfiles"
BASE_SUITE = "bookworm"
BASE_PACKAGES = ("ca-certificates", "passwd", "python3-venv")
VENV = "/opt/python"
# Debian's own pip trusts the system's CA store; the base's does too (builds mount the
# host's bundle over it, so pip reaches PyPI exactly as the host's pip does).
SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
VENV_PIP_CONF = f"[global]\ncert = {SYSTEM_CA_BUNDLE}\n"
# Package caches and documentation: not in a slim image.
BASE_CLEANUP = (
    "var/cache/apt/archives/*.deb",
    "var/cache/apt/*.bin",
    "var/lib/apt/lists/*",
    "usr/share/doc/*",
    "usr/share/man/*",
    "usr/share/info/*",
    "usr/share/locale/*",
)
BASE_CONFIG = (
    f"ENV PATH={VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    'CMD ["python3"]',
)
SERVICE_TAG = "localhost/stripe-consumer:local"
REPOSITORY = "localhost/stripe-consumer"


def images_dir() -> Path:
    return stack.cache_dir() / "images"


def content_key(what: Any) -> str:
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:12]


def _files_digest(directory: Path) -> dict[str, str]:
    return {
        str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
        + ("+x" if os.access(path, os.X_OK) else "")
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def host_ca_bundle() -> Path | None:
    """The CA bundle the host's pip trusts (a proxy's CA may be in it), if any."""
    for name in ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        value = os.environ.get(name)
        if value and Path(value).is_file():
            return Path(value)
    default = Path(SYSTEM_CA_BUNDLE)
    return default if default.is_file() else None


def build_args(base: str) -> list[str]:
    """``podman build`` options shared by every build here: the local base, the host's
    network (registries are reachable only that way) and its CA bundle, mounted read-only
    for the build's RUN steps only (never copied into a layer)."""
    args = ["--pull=never", "--network", "host", "--build-arg", f"BASE_IMAGE={base}"]
    ca = host_ca_bundle()
    if ca is not None:
        args += ["-v", f"{ca}:{SYSTEM_CA_BUNDLE}:ro"]
    return args


def _remove_older(repository: str, keep: str) -> None:
    """Untag our earlier builds of the same image (their keys no longer match anything)."""
    listing = podman.podman(
        "images", "--format", "{{.Repository}}:{{.Tag}}", repository, what="podman images"
    )
    for tag in listing.split():
        if tag != keep and not tag.endswith(":<none>"):
            podman.podman_ok("rmi", tag)  # not --force: one a container still uses stays


# --- The base -------------------------------------------------------------------------------


def _apt_mirror() -> str:
    """The Debian mirror apt uses here (debootstrap takes the same), else deb.debian.org."""
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for source in sources:
        try:
            lines = source.read_text().splitlines()
        except OSError:
            continue
        for line in lines:  # one-line ("deb URI suite ...") and deb822 ("URIs: URI") formats
            words = line.split()
            if words[:1] in (["deb"], ["URIs:"]):
                uris = [word for word in words[1:] if "://" in word]
                if uris and uris[0].rstrip("/").endswith("/debian"):
                    return uris[0]
    return "http://deb.debian.org/debian"


def base_key() -> str:
    recipe = {
        "suite": BASE_SUITE,
        "variant": "minbase",
        "packages": BASE_PACKAGES,
        "venv": VENV,
        "pip.conf": VENV_PIP_CONF,
        "cleanup": BASE_CLEANUP,
        "config": BASE_CONFIG,
        "arch": os.uname().machine,
    }
    return content_key(recipe)


def base_tag() -> str:
    return f"{REPOSITORY}-base:{BASE_SUITE}-{base_key()}"


def _make_root_filesystem(archive: Path) -> None:
    """debootstrap a minimal bookworm with the packages, add the venv, tar it to archive."""
    root = Path(tempfile.mkdtemp(prefix="rootfs-", dir=images_dir()))
    try:
        stack.say(f"base: debootstrap {BASE_SUITE} ({', '.join(BASE_PACKAGES)}); first run only")
        stack.run(
            stack.as_root(
                [
                    stack.tool("debootstrap"),
                    "--variant=minbase",
                    f"--include={','.join(BASE_PACKAGES)}",
                    BASE_SUITE,
                    str(root),
                    _apt_mirror(),
                ]
            ),
            "debootstrap",
        )
        stack.run(stack.as_root(["chroot", str(root), "python3", "-m", "venv", VENV]), "venv")
        with tempfile.NamedTemporaryFile("w", suffix=".conf", dir=images_dir()) as conf:
            conf.write(VENV_PIP_CONF)
            conf.flush()
            install = ["install", "-m", "644", conf.name, f"{root}{VENV}/pip.conf"]
            stack.run(stack.as_root(install), "pip.conf")
        doomed = [p for pattern in BASE_CLEANUP for p in glob.glob(str(root / pattern))]
        if doomed:
            stack.run(stack.as_root(["rm", "-rf", *doomed]), "base cleanup")
        partial = archive.with_name(archive.name + ".partial")
        exclude = [f"--exclude=./{d}/*" for d in ("dev", "proc", "sys", "run", "tmp")]
        tar = ["tar", "--numeric-owner", "-C", str(root), *exclude, "-czf", str(partial), "."]
        stack.run(stack.as_root(tar), "tar the base")
        partial.replace(archive)
    finally:
        stack.run(stack.as_root(["rm", "-rf", str(root)]), "remove the debootstrap dir")


def ensure_base() -> str:
    """The base image's tag; built from the cached archive, or debootstrapped first."""
    tag = base_tag()
    images_dir().mkdir(parents=True, exist_ok=True)
    with stack.file_lock(images_dir() / ".lock-base"):
        if podman.podman_ok("image", "exists", tag):
            return tag
        archive = images_dir() / f"base-{base_key()}.tar.gz"
        if not archive.exists():
            _make_root_filesystem(archive)
            for old in images_dir().glob("base-*.tar.gz"):
                if old != archive:
                    old.unlink()
        changes = [arg for change in BASE_CONFIG for arg in ("--change", change)]
        podman.podman("import", *changes, str(archive), tag, what="podman import (base)")
        _remove_older(f"{REPOSITORY}-base", tag)
    return tag


# --- Images on the base ---------------------------------------------------------------------


@contextmanager
def _context(recipe: str, extra: dict[str, Path], texts: dict[str, str]) -> Iterator[Path]:
    """A build context: containerfiles/<recipe>/ plus hard links (or copies) of extra
    files and directories and small generated files."""
    with tempfile.TemporaryDirectory(prefix=f"{recipe}-", dir=images_dir()) as tmp:
        context = Path(tmp) / "context"
        shutil.copytree(CONTAINERFILES / recipe, context)
        for name, source in extra.items():
            if source.is_dir():
                shutil.copytree(source, context / name, copy_function=_link_or_copy)
            else:
                _link_or_copy(str(source), str(context / name))
        for name, text in texts.items():
            (context / name).write_text(text)
        yield context


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _ensure_on_base(
    recipe: str, extra: dict[str, Path], texts: dict[str, str], version: str
) -> str:
    base = ensure_base()
    inputs = {
        "base": base,
        "recipe": _files_digest(CONTAINERFILES / recipe),
        "extra": {
            name: sorted(
                (p.name, p.stat().st_size) for p in (path.iterdir() if path.is_dir() else [path])
            )
            for name, path in extra.items()
        },
        "texts": texts,
    }
    repository = f"{REPOSITORY}-{recipe}"
    tag = f"{repository}:{version}-{content_key(inputs)}"
    with stack.file_lock(images_dir() / f".lock-{recipe}"):
        if podman.podman_ok("image", "exists", tag):
            return tag
        stack.say(f"{recipe}: building {tag} (first run only)...")
        with _context(recipe, extra, texts) as context:
            podman.podman(
                "build", *build_args(base), "-t", tag, str(context), what=f"{recipe} build"
            )
        _remove_older(repository, tag)
    return tag


def ensure_kafka() -> str:
    libs = stack.install_kafka()
    return _ensure_on_base(
        "kafka", {"libs": libs}, {"log4j2.properties": stack.KAFKA_LOG4J}, stack.KAFKA_VERSION
    )


def ensure_redis() -> str:
    return _ensure_on_base("redis", {}, {}, "debian")


def ensure_stripe_mock() -> str:
    binary = stack.install_stripe_mock()
    return _ensure_on_base(
        "stripe-mock", {"stripe-mock": binary}, {}, stack.STRIPE_MOCK_VERSION.lstrip("v")
    )


def build_service(tag: str = SERVICE_TAG) -> tuple[str, float]:
    """Build the service image from the project's Dockerfile on the local base; return its
    tag and the seconds the build took (podman's layer cache makes an unchanged one quick)."""
    base = ensure_base()
    started = time.monotonic()
    with stack.file_lock(images_dir() / ".lock-service"):
        podman.podman(
            "build", *build_args(base), "-f", str(stack.REPO_ROOT / "Dockerfile"), "-t", tag,
            str(stack.REPO_ROOT), what="service image build",
        )  # fmt: skip
    return tag, time.monotonic() - started


def image_tags() -> dict[str, str]:
    """Every image, built when missing, by the variable docker-compose.yml reads it from."""
    base = ensure_base()
    jobs: dict[str, Callable[[], str]] = {
        "KAFKA_IMAGE": ensure_kafka,
        "REDIS_IMAGE": ensure_redis,
        "STRIPE_MOCK_IMAGE": ensure_stripe_mock,
        "STRIPE_CONSUMER_IMAGE": lambda: build_service()[0],
    }
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(job) for name, job in jobs.items()}
        tags = {name: future.result() for name, future in futures.items()}
    return {"BASE_IMAGE": base, **tags}


# --- Command line ---------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True)
    install = commands.add_parser("install", help="podman, then every image")
    install.add_argument(
        "--if-available", action="store_true", help="where podman cannot run, say why, exit 0"
    )
    service = commands.add_parser("service", help="(re)build the service image")
    service.add_argument("--tag", default=SERVICE_TAG)
    commands.add_parser("status", help="whether podman runs here, and why not")
    commands.add_parser("env", help="CONTAINERS_CONF and the image tags, as shell lines")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    reason = podman.unavailable_reason()
    if reason is not None:
        print(f"podman cannot run here: {reason}", file=sys.stderr)
        return 0 if args.command == "install" and args.if_available else 1
    try:
        if args.command == "status":
            stack.say(f"podman runs here (CONTAINERS_CONF={podman.containers_conf()})")
        elif args.command == "service":
            tag, seconds = build_service(args.tag)
            stack.say(f"{tag} ({seconds:.1f}s)")
        else:
            started = time.monotonic()
            tags = image_tags()
            if args.command == "env":
                stack.say(f"export CONTAINERS_CONF={podman.containers_conf()}")
                for name, tag in tags.items():
                    stack.say(f"export {name}={tag}")
            else:
                for name, tag in tags.items():
                    stack.say(f"{name}={tag}")
                stack.say(f"images ready ({time.monotonic() - started:.1f}s)")
    except stack.StackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
