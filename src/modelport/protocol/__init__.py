"""modelport.protocol."""
