"""Small adapters giving each framework its own way to read the user and the access token.

Each module imports its framework: import only the one you use.
"""
