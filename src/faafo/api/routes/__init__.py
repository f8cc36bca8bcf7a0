"""HTTP routes, one module per audience: clients, workers, browsers, operators."""
