"""What runs inside a generation actor: the vLLM engine, sampling parameters, Arrow rows.

Knows nothing of the driver: `jobs` places these on machines.
"""
