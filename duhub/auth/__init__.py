"""Authentication and authorization, the pure part: principals, scope checks, the token file,
loopback addresses, certificates. The gRPC and HTTP glue lives in services/auth/."""

from duhub.auth.principal import (
    LOCAL,
    Forbidden,
    Kind,
    Principal,
    Unauthenticated,
    check_publish,
    check_within,
    parse_uri,
    scope_for,
)

__all__ = [
    "LOCAL",
    "Forbidden",
    "Kind",
    "Principal",
    "Unauthenticated",
    "check_publish",
    "check_within",
    "parse_uri",
    "scope_for",
]
