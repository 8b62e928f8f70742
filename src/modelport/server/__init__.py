"""modelport.server."""
