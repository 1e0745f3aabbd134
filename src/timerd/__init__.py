"""timerd: a small, fast, durable daemon that fires HTTP webhooks after a delay."""

__version__ = "0.1.0"
