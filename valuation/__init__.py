"""Valuation rounds (Django side): state machine, cached models and scores, values, payouts.

The mathematics lives in valuation/engine/ (framework-free); services.py translates
between ORM rows and engine data.
"""
