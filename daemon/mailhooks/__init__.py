"""mailhooks: email events to webhooks, configured as YAML files in git."""

__version__ = "0.1.0"
