"""glamm.results"""
