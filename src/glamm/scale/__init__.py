"""Data beyond one machine's memory: models fitted on partitioned data (a Dask DataFrame)
from sums over the partitions. :mod:`.metadata` (pass 1: rows kept, level dictionaries),
:mod:`.partials` (pass 2: the cross-products), :mod:`.model` (the LMM on them), :mod:`.rows`
(per-row values, a partition at a time) and :mod:`.dask_frame` (the Dask glue and the
result); only the last imports Dask."""
