"""Suppression service: the gate in front of every marketing send."""
