"""glamm.lmm"""
