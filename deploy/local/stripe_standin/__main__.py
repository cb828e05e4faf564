"""``python deploy/local/stripe_standin --port 0`` (or ``python -m stripe_standin`` from
deploy/local): prints ``Listening on http://127.0.0.1:PORT``, then serves until killed."""

import sys
from pathlib import Path

if not __package__:
    # Run as a directory, Python puts this package's own folder first on sys.path, where a
    # module of it would shadow any top-level module of the same name for every importer
    # (aiohttp's included). Put the folder that holds the package there instead.
    _PACKAGE_DIR = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _PACKAGE_DIR]
    sys.path.insert(0, str(_PACKAGE_DIR.parent))

from stripe_standin import main

main()
