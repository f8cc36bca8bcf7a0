"""faafo.client"""
