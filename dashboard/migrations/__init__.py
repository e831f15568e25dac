"""Alembic migrations of the dashboard database, shipped in the package and run at start (see dashboard/db.py)."""
