"""Dataset readers, splits, samples and the on-disk feature cache."""
