"""feqa dashboard."""
