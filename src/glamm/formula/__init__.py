"""glamm.formula"""
