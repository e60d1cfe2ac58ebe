"""Webhooks as code: reading, checking and resolving the YAML files of a webhooks directory."""
