"""``python -m pgstreams.cli``: the same as the ``pgstreams`` script."""

from . import main

raise SystemExit(main())
