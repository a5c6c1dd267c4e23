"""``python -m dispatcher``.

A worker must exit 0 on SIGTERM, SIGINT or SIGHUP even if the signal comes while it is still
importing, so for ``worker`` the signals are caught first thing and replayed once the worker
runs (see ``runtime.early_signals``). Any other command stopped by Ctrl-C exits 130 quietly,
even while it is still importing.
"""

import sys

if "worker" in sys.argv[1:]:
    from dispatcher.runtime import catch_early_signals

    catch_early_signals()

try:
    from dispatcher.cli import main
except KeyboardInterrupt:
    sys.exit(130)

sys.exit(main())
