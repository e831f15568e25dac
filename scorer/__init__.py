"""feqa scorer."""
