"""dispatcher: a high-throughput asyncio bulk campaign dispatcher.

Apps enqueue campaigns with :class:`Client`; ``python -m dispatcher worker`` sends them.
"""

from dispatcher.client import CampaignNotFound, Client, EnqueueInProgress
from dispatcher.errors import DispatcherError
from dispatcher.model import (
    Campaign,
    CampaignError,
    CampaignStatus,
    Enqueued,
    Recipient,
    Result,
    Status,
)

__all__ = [
    "Campaign",
    "CampaignError",
    "CampaignNotFound",
    "CampaignStatus",
    "Client",
    "DispatcherError",
    "EnqueueInProgress",
    "Enqueued",
    "Recipient",
    "Result",
    "Status",
]
__version__ = "0.1.0"
