"""``python3 deploy/local/stack <command>`` (or ``python3 -m stack`` from deploy/local)."""

import sys
from pathlib import Path

if not __package__:
    # Run as a directory, Python puts this package's own folder first on sys.path, where a
    # module of it would shadow any top-level module of the same name for every importer.
    # Put the folder that holds the package there instead, and import it as a package.
    _PACKAGE_DIR = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _PACKAGE_DIR]
    sys.path.insert(0, str(_PACKAGE_DIR.parent))

from stack import main

sys.exit(main())
