"""`python -m layers.build`."""

from layers.build.cli import main

raise SystemExit(main())
