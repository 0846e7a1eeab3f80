"""One handler function per command, grouped by bounded context."""
