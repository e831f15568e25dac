"""feqa trainer."""
