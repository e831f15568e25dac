"""feqa phantom."""
