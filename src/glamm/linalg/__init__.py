"""glamm.linalg"""
