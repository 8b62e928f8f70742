"""modelport.testing."""
