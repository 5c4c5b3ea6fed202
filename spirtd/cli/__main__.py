"""`python -m spirtd.cli ...`: the spirtd command without its console script."""

from spirtd.cli import main

raise SystemExit(main())
