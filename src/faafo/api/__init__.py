"""faafo.api"""
