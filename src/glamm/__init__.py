"""glamm: mixed-effects models."""
