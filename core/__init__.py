"""Shared code of every component: the API types, the storage layout, settings."""
