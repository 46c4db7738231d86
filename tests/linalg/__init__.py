"""Unit tests of glamm.linalg (the block types, the cross-products, the blocked Cholesky)."""
