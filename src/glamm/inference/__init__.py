"""glamm.inference"""
