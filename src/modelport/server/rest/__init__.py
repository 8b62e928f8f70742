"""modelport.server.rest."""
