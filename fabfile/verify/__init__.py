"""The testinfra suite `fab -H NAME verify` runs against a real server.

It checks every promise provision makes, through the same host-key-checked
SSH connection slipway uses, so it can be run against production too.
"""
