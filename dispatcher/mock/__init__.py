"""An independent mock of the providers' APIs, for demos, tests and benchmarks.

Written from the providers' documents, never from our client codecs (it imports nothing from
``dispatcher`` outside this package), so that the two check each other.
"""

from dispatcher.mock.server import build_app, start
from dispatcher.mock.state import MockSettings

__all__ = ["MockSettings", "build_app", "start"]
