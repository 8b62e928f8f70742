"""Domain types, errors and settings shared by every layer; imports nothing else of modelport."""
