"""Generalized least squares with residual correlation structures (R's ``nlme::gls``).

- :mod:`.spec`: the ``correlation=`` string (``"ar1(Days | Subject)"``) parsed as data;
- :mod:`.correlation`: the structures (nlme's ``corAR1``, ``corCAR1``, ``corCompSymm``,
  ``corSymm`` and the spatial ``corExp``, ``corGaus``, ``corLin``, ``corRatio``,
  ``corSpher``), each a map from its unconstrained parameters to the correlation blocks;
- :mod:`.groups`: the rows split into groups, batched by group size;
- :mod:`.fit`: the criterion profiled over ``beta`` and ``sigma`` and its optimization.

The public entry point is :func:`glamm.gls` (``glamm/gls_api.py``); the result is
:class:`glamm.results.gls_result.GlsResult`. The package is named after nlme's ``corStruct``
(a subpackage ``glamm.gls`` would shadow the function once imported).
"""
