"""faafo.messaging"""
