"""Bundled experiment configs (TOML): base plus short overrides."""
