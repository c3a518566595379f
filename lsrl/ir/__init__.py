"""Typed IR of linear/gated recurrent ops, its interpreter and the pass interface."""
