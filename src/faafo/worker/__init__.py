"""faafo.worker"""
