"""One blueprint per area; `create_app` registers them."""
