"""The read model: rollups and reference state in SQL (SQLite or PostgreSQL), via SQLAlchemy."""
