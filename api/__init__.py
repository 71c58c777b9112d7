"""HTTP layer: small routers and dependencies that `api_app.create_app` includes."""
