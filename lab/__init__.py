"""Everything that builds or reaches a Calico-on-Docker lab."""
