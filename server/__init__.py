"""server: the FastAPI app (page + JSON API), its settings, and the CLI."""
