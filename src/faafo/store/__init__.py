"""faafo.store"""
