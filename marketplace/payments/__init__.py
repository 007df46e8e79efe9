"""Payments through Stripe. The only package that imports `stripe`."""
