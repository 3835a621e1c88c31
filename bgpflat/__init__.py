"""bgpflat: flatten the network between an office and a Calico Kubernetes cluster over BGP."""

__version__ = "0.1.0"
