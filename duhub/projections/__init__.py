"""Pure folds from events to read-model changes. No I/O, no clock, no randomness."""
