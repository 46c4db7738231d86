"""Unit tests of glamm.optim (optimizer backends, the OptSummary record, Newton)."""
