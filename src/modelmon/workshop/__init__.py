"""The workshop this project grew from: the stores data, its model, and `modelmon demo`, which
runs the whole of modelmon on it.

May import: everything but `cli`.
"""
