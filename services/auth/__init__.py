"""Authentication and authorization at the services' edge (gRPC and the dashboard)."""

from services.auth.guard import OPEN, Security, grpc_principal
from services.auth.scope import UnitPaths

__all__ = ["OPEN", "Security", "UnitPaths", "grpc_principal"]
