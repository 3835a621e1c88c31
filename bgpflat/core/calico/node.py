"""The annotations calico/node writes on each Kubernetes Node (calico-facts §3).

They carry the node's BGP identity when it is not in a Calico Node resource: its addresses, its AS
(absent means the cluster default) and, for a route reflector, its cluster ID. Both the observed
state of a plan and the route model read them, so the names live here, beside the Calico models.
"""

from __future__ import annotations

ANNOTATION_IPV4 = "projectcalico.org/IPv4Address"
ANNOTATION_IPV6 = "projectcalico.org/IPv6Address"
ANNOTATION_AS = "projectcalico.org/ASNumber"
ANNOTATION_RR = "projectcalico.org/RouteReflectorClusterID"
ANNOTATION_IPIP = "projectcalico.org/IPv4IPIPTunnelAddr"
