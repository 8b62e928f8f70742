"""modelport.runtimes."""
