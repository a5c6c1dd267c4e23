"""``python -m dispatcher``.

A worker must exit 0 on SIGTERM, SIGINT or SIGHUP even if the signal comes while it is still
importing, so for ``worker`` the signals are caught first thing and replayed once the worker
runs (see ``runtime.early_signals``).
"""

import sys

if "worker" in sys.argv[1:]:
    from dispatcher.runtime import catch_early_signals

    catch_early_signals()

from dispatcher.cli import main

sys.exit(main())
