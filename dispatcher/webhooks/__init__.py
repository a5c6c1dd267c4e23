"""The receiver of provider pushes: delivery reports, inbound SMS, MO responses, keywords."""

from dispatcher.webhooks.app import build_app

__all__ = ["build_app"]
