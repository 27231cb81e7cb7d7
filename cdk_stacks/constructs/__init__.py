"""Reusable pieces that the stacks compose."""
