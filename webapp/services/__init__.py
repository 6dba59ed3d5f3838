"""Services: plain functions used by the views, the CLI and the tests alike."""
