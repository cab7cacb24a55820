"""The dashboard page: static files served by services.query.http (package data)."""
