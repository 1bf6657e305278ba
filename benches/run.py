"""pgstreams vs the raw driver, side by side: a thin wrapper over ``pgstreams.bench``.

    python benches/run.py [--dsn DSN] [--quick] [--only NAME ...] [--json OUT]

See benches/README.md for what each number means.
"""

from __future__ import annotations

import sys
from pathlib import Path

try:
    from pgstreams.bench import main
except ImportError:  # running from a checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))
    from pgstreams.bench import main

if __name__ == "__main__":
    sys.exit(main())
