"""``python -m guardrail``: the command line."""

from ._app.cli import main

raise SystemExit(main())
