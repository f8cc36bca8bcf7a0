"""faafo.launcher"""
