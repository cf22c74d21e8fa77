"""calicoctl with the 0.21/0.22 grammar, outputs, messages and exit codes (spec §3)."""
