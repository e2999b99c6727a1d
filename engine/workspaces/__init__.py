"""Workspaces: the tenant every row belongs to, its API keys and signing secrets."""
