"""glamm.terms"""
