"""Peer solvers for the speed benchmark: the same model in plain NumPy and in FiPy."""
