"""Generalized linear mixed models: PIRLS, the Laplace approximation and the fits built on them."""
