"""The domain: events, the hierarchy, campaigns and the rules. No infrastructure here."""
