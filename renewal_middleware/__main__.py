"""``python -m renewal_middleware``: the ``renewal-middleware`` command."""

from renewal_middleware.cli import main

raise SystemExit(main())
