"""The study database: SQLAlchemy models, Alembic migrations, queries and the measurement store."""
