"""duhub: an event-sourced reporting hub for supervision work across city and county tiers."""
