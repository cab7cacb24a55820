"""Tamper evidence: walk the log's per-source hash chains."""
