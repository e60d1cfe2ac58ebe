"""Webhooks as code under review: `mailhooks diff` reads two states of the webhooks
directory (git revisions or directories), says what the change does, and what it costs."""
