"""The reference Calico v1 node of the embedded lab (calicoctl 0.21/0.22, Felix 1.4,
libnetwork plugin 0.9, BIRD configured confd-style), built to ../shared/calico-legacy-spec.md.

Independence rule: nothing here imports fixtures/, and fixtures/ never imports this package.
"""
