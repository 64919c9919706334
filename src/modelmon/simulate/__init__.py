"""Simulation: scenarios of traffic, the simulator that sends them to any front door, the
timeline of alerts it watches, and the local Slack stand-in that receives them.

May import: `targets` and everything below.
"""
