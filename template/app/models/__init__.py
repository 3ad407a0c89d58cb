"""Every model, imported so that `Base.metadata` knows them all (Alembic relies on it)."""

from app.models.user import User

__all__ = ["User"]
