"""Forms: the HTTP edge that turns submitted fields into typed values for the services."""
