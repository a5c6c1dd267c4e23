"""The one base of the errors dispatcher raises for its users to catch.

Apps and the command line catch :class:`DispatcherError` once instead of a list of classes
that grows with every module. Each error keeps its built-in second base too
(``CampaignError`` is still a ``ValueError``, ``CampaignNotFound`` a ``KeyError``), so code
that catches those goes on working. Exceptions used only for control flow inside one module
(a refused webhook, an API conflict) are not part of this family.
"""

from __future__ import annotations

__all__ = ["DispatcherError"]


class DispatcherError(Exception):
    """Something dispatcher cannot do, said in one line fit to show a person."""
