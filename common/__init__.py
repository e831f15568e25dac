"""Contracts shared by every feqa service: messages, streams, the Redis bus, settings, logging, errors."""
