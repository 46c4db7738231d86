"""glamm.optim"""
