"""Composition root: the ``feqa`` command, the embedded Redis and the local stack launcher."""
