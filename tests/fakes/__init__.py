"""In-process fakes of the ports, for unit tests only (integration tests use the real services)."""
