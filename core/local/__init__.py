"""Local mode: the platform's services as processes on one machine."""
