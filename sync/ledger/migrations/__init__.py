"""Alembic migrations, one revision per schema change, shipped inside the package."""
