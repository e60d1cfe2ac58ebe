"""YAML documents checked against a pydantic model, every error at `path:line:col`: the
machinery webhook files and the daemon's config share."""
