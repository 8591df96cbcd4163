"""``python -m client``: the ``vod`` command without the console script."""

from client.cli import main

raise SystemExit(main())
