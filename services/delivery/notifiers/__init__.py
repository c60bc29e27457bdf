"""Offline notifications: the Notifier port, the batching dispatcher and the adapters (webhook)."""
