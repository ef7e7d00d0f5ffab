"""Pure domain rules: purposes, consent lifecycle, identifiers, decisions. Imports nothing but itself."""
