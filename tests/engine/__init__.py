"""Test fixtures that stand where the Pulumi engine and its providers would.

rules.py holds the one table of how the engine and the providers this program
uses change what they own (each row names its source); plan.py derives, from
two mocked plans, the steps `pulumi up` would take between them. The real-engine
scenarios apply those same steps to a Docker daemon. Nothing in the product
imports this package (tests/test_layout.py checks).
"""
