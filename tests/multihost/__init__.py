"""Multi-host tests: the seed's scaled-out topology on network namespaces (needs root)."""
