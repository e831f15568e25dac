"""Model families: one file per family, each with a config dataclass and size factories."""
