"""``faafo deploy``: the seed's topologies on an OpenStack cloud, converged by name.

The seed wrote one libcloud script per topology and re-ran them by hand; here
one model (:mod:`faafo.deploy.topology`) describes all three, and
:mod:`faafo.deploy.converge` makes the cloud match it, so that re-running is
always safe.
"""
