"""modelport.service."""
