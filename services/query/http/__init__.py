"""The city command's dashboard: a JSON API, live change events (SSE) and the page itself."""

from services.query.http.server import DashboardServer, start_dashboard

__all__ = ["DashboardServer", "start_dashboard"]
